//go:build linux

package unreal

import (
	"os"

	"golang.org/x/sys/unix"
)

// punchHole frees the disk space of [off, off+size) of f, keeping the file
// size: the evicted block reads back as zeros (which fail its hash, should
// a stale record ever claim it) and costs no space.
func punchHole(f *os.File, off, size int64) error {
	return unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, size)
}
