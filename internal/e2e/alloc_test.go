package e2e

import (
	"os"
	"syscall"
)

// allocated returns the bytes a (possibly sparse) file really holds.
func allocated(fi os.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return fi.Size()
}
