//go:build linux

package real

import (
	"errors"
	"io/fs"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// isWhiteout tells whether info is an overlayfs whiteout: a character
// device with device number 0:0.
func isWhiteout(info os.FileInfo) bool {
	if info.Mode()&fs.ModeCharDevice == 0 {
		return false
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	return ok && st.Rdev == 0
}

// getXattr reads an extended attribute of path (not following a symlink).
// Absent, unsupported or not permitted (trusted.* needs CAP_SYS_ADMIN to
// read) all read as absent.
func getXattr(path, name string) (string, bool) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Lgetxattr(path, name, buf)
		if errors.Is(err, unix.ERANGE) && len(buf) < 1<<16 {
			buf = make([]byte, 4*len(buf))
			continue
		}
		if err != nil {
			return "", false
		}
		return string(buf[:n]), true
	}
}

// removeXattr removes an extended attribute; an absent one is no error.
func removeXattr(path, name string) error {
	err := unix.Lremovexattr(path, name)
	if errors.Is(err, unix.ENODATA) {
		return nil
	}
	return err
}

// unpinLease guards a file while unpin moves it: a write lease can only be
// taken while no one else has the file open (through an overlay mount, an
// open of the merged file opens the upper file itself), and while it is
// held an open by anyone else waits and breaks it, which leaseBroken sees.
type unpinLease struct{ f *os.File }

// errOpenElsewhere means the file is open (for reading or writing) by
// another process.
var errOpenElsewhere = errors.New("the file is open (in the mount or directly); unpin it once it is closed")

// takeUnpinLease takes the write lease on abs. Where leases are not
// available (file systems without them, fs.leases-enable = 0, a file owned
// by someone else without CAP_LEASE) it returns a nil lease and no error:
// the guard is then not available, and unpin goes on as before.
func takeUnpinLease(abs string) (*unpinLease, error) {
	f, err := os.OpenFile(abs, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	_, err = unix.FcntlInt(f.Fd(), unix.F_SETLEASE, unix.F_WRLCK)
	switch {
	case err == nil:
		return &unpinLease{f: f}, nil
	case errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EBUSY):
		f.Close()
		return nil, errOpenElsewhere
	default:
		f.Close()
		return nil, nil
	}
}

// broken tells whether someone opened the file since the lease was taken.
func (l *unpinLease) broken() bool {
	if l == nil {
		return false
	}
	t, err := unix.FcntlInt(l.f.Fd(), unix.F_GETLEASE, 0)
	return err != nil || t != unix.F_WRLCK
}

// release gives the lease up (an opener waiting on it goes on) and closes
// the file.
func (l *unpinLease) release() {
	if l == nil {
		return
	}
	_, _ = unix.FcntlInt(l.f.Fd(), unix.F_SETLEASE, unix.F_UNLCK)
	l.f.Close()
}

// overlayOver returns where an overlayfs whose upper layer is dir is
// mounted (in this process's mount namespace), or "" when none is.
func overlayOver(dir string) string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	var want os.FileInfo
	for _, m := range parseOverlayMounts(f) {
		if m.upper != dir {
			if want == nil {
				if want, err = os.Stat(dir); err != nil {
					return ""
				}
			}
			if got, err := os.Stat(m.upper); err != nil || !os.SameFile(got, want) {
				continue
			}
		}
		return m.target
	}
	return ""
}

// IsWhiteout tells whether info (from Lstat) is an overlayfs whiteout: a
// removal the kernel marked in an upper layer, not a file.
func IsWhiteout(info os.FileInfo) bool { return isWhiteout(info) }
