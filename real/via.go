package real

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/realizefs/realize"
)

// via is how the daemon changes names in the real directory. When an
// overlay is mounted over it (`realize mount`, Linux), renames into place,
// removals and new directories go through the overlay mount: overlayfs
// keeps the upper layer's dentries it looked up and never looks at them
// again, so a change made beside it stays unseen through the mount — a
// file another peer replaced keeps showing the old bytes, a file unpin
// moved into the cache keeps being reached there, and writes to it are
// lost. Through the mount, the kernel updates its own cache. A removal
// through the mount of a name the lower layer also shows leaves a
// whiteout, which the caller removes once the index no longer holds the
// name (removeWhiteout). Anything that fails through the mount is done
// directly, as it was before (the mount may then show the old state until
// the kernel forgets it). See docs/decisions/0014-kernel-caches.md.
type via struct {
	a   *Arena
	mnt string // the overlay mounted over the real directory; "" = none
}

// via looks up the overlay mounted over the arena's real directory now: a
// mount can come and go while the daemon runs.
func (a *Arena) via() via {
	return via{a: a, mnt: overlayOver(a.root)}
}

// at is where p is changed: in the mount, or in the real directory.
func (v via) at(p realize.Path) string {
	if v.mnt == "" {
		return v.a.abs(p)
	}
	if p.IsRoot() {
		return v.mnt
	}
	return filepath.Join(v.mnt, filepath.FromSlash(string(p)))
}

func (v via) fellBack(op string, p realize.Path, err error) {
	v.a.logger.Debug("overlay: not done through the mount; done in the real directory", "op", op, "path", string(p), "err", err)
}

// rename renames from to to (arena paths; from may be a reserved name,
// a temporary file).
func (v via) rename(from, to realize.Path) error {
	if v.mnt != "" {
		err := os.Rename(v.at(from), v.at(to))
		if errors.Is(err, fs.ErrNotExist) && v.copyUp(to.Dir()) == nil {
			// The kernel knew the directory from the lower layer only, so
			// it did not see the temporary file; it does now.
			err = os.Rename(v.at(from), v.at(to))
		}
		if err == nil {
			return nil
		}
		v.fellBack("rename", to, err)
	}
	return os.Rename(v.a.abs(from), v.a.abs(to))
}

// remove removes a file, symlink or empty directory.
func (v via) remove(p realize.Path) error {
	if v.mnt != "" {
		err := os.Remove(v.at(p))
		if err == nil {
			return nil
		}
		v.fellBack("remove", p, err)
	}
	return os.Remove(v.a.abs(p))
}

// mkdir makes a directory, or makes sure one the lower layer shows is in
// the upper layer too (the kernel copies it up).
func (v via) mkdir(p realize.Path) error {
	if v.mnt != "" {
		if _, err := os.Lstat(v.a.abs(p)); errors.Is(err, fs.ErrNotExist) {
			return v.mkdirNew(p)
		}
		err := os.Mkdir(v.at(p), 0o755)
		if errors.Is(err, fs.ErrExist) {
			if _, lerr := os.Lstat(v.a.abs(p)); lerr == nil {
				return err
			}
			err = v.copyUp(p)
		}
		if err == nil {
			return nil
		}
		v.fellBack("mkdir", p, err)
	}
	return os.Mkdir(v.a.abs(p), 0o755)
}

// mkdirNew makes a directory nothing is at yet. Made through the mount, it
// would be known to the kernel from the upper layer alone: the lower
// layer had nothing there when the kernel looked, and overlayfs never
// looks at the lower layer again for a directory it holds — the files
// other peers put in it later (unreal, shown by the lower layer alone)
// would stay out of its listing. So it is made in the real directory,
// which the lower layer shows too, and then looked up through the mount,
// which finds it in both layers. Where the kernel holds a negative entry
// for the name (looked up before it existed: a known limit, decision
// 0014), that lookup fails: the directory is then made through the mount
// after all, so that at least it shows.
func (v via) mkdirNew(p realize.Path) error {
	abs := v.a.abs(p)
	if err := os.Mkdir(abs, 0o755); err != nil {
		return err
	}
	_, err := os.Lstat(v.at(p))
	if err == nil {
		return nil
	}
	if os.Remove(abs) != nil {
		return nil // something is in it already: keep it as it is
	}
	if err := os.Mkdir(v.at(p), 0o755); err != nil {
		v.fellBack("mkdir", p, err)
		return os.Mkdir(abs, 0o755)
	}
	return nil
}

// copyUp has the kernel copy directory p (and its parents) into the upper
// layer, by setting its times through the mount to what they are.
func (v via) copyUp(p realize.Path) error {
	if v.mnt == "" || p.IsRoot() {
		return nil
	}
	info, err := os.Lstat(v.at(p))
	if err != nil {
		return err
	}
	if !info.IsDir() {
		return syscall.ENOTDIR
	}
	return os.Chtimes(v.at(p), info.ModTime(), info.ModTime())
}

// removeWhiteout removes the whiteout a removal through the mount left at
// p, once the index says what the lower layer shows there. A whiteout the
// kernel made for a person's removal is the scanner's to record
// (consumeOverlay); this one only repeats what the index already says, and
// left in place it would hide what other peers put at p later.
func (a *Arena) removeWhiteout(p realize.Path) {
	abs := a.abs(p)
	info, err := os.Lstat(abs)
	if err != nil || !isWhiteout(info) {
		return
	}
	if err := os.Remove(abs); err != nil && !errors.Is(err, fs.ErrNotExist) {
		a.logger.Warn("overlay: whiteout not removed", "path", string(p), "err", err)
	}
}
