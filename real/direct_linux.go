//go:build linux

package real

import (
	"os"
	"syscall"
)

// openDirect opens name a second time for I/O that bypasses the page
// cache (O_DIRECT). File systems that do not support it refuse the open.
func openDirect(name string) (*os.File, error) {
	return os.OpenFile(name, os.O_RDWR|syscall.O_DIRECT, 0)
}
