//go:build darwin

package real

import (
	"os"
	"syscall"
)

// openFlags opens a file for hashing without following a symlink at the
// final component, and without blocking if a FIFO took the file's place.
const openFlags = os.O_RDONLY | syscall.O_NOFOLLOW | syscall.O_NONBLOCK

func sysStat(fi os.FileInfo, s *Stat) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return
	}
	s.CTime = st.Ctimespec.Nano()
	s.Inode = st.Ino
	s.Dev = uint64(uint32(st.Dev)) // int32 on darwin: keep it non-negative
}
