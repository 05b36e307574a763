//go:build linux || darwin || freebsd

package unreal

import "golang.org/x/sys/unix"

// statDisk returns the size of the file system holding dir and the space
// an unprivileged process may still use on it.
func statDisk(dir string) (total, free int64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	bsize := int64(st.Bsize) //nolint:unconvert // uint32 on some systems
	return int64(st.Blocks) * bsize, int64(st.Bavail) * bsize, nil
}
