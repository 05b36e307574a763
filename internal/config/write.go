package config

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
)

// lockFile takes an exclusive lock on the config file at path, so that two
// edits (two `realize peer add` from a script) do not both read the old
// file and lose one of the changes. Since edits replace the file, the lock
// is on whichever file is at path once the lock is held.
func lockFile(path string) (unlock func(), err error) {
	for {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			f.Close()
			if unsupported(err) {
				return func() {}, nil // e.g. some network filesystems: edit unlocked
			}
			return nil, err
		}
		held, err1 := f.Stat()
		now, err2 := os.Stat(path)
		if err1 == nil && err2 == nil && os.SameFile(held, now) {
			return func() { f.Close() }, nil // closing releases the lock
		}
		f.Close() // replaced while we waited: lock the new one
	}
}

func unsupported(err error) bool {
	return errors.Is(err, syscall.ENOLCK) || errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOTSUP)
}

// writeAtomic replaces the file at path with data so that a crash leaves
// either the old or the new file, never a mix: a temporary file in the same
// directory, synced, renamed over it, and the directory synced. The file
// keeps its mode (and its owner, when the process may set it).
func writeAtomic(path string, data []byte) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = fillTemp(f, data, fi)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

func fillTemp(f *os.File, data []byte, like os.FileInfo) error {
	err := f.Chmod(like.Mode().Perm())
	if st, ok := like.Sys().(*syscall.Stat_t); ok && err == nil {
		// Best effort: only root may give a file away, and a user editing
		// their own file needs nothing.
		_ = f.Chown(int(st.Uid), int(st.Gid))
	}
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
