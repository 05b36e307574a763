//go:build !linux

package real

import (
	"os"
	"testing"
)

// asUnprivileged runs fn and reports whether it ran; root reads any file
// whatever its mode, so as root the permission test is skipped.
func asUnprivileged(t *testing.T, fn func()) bool {
	t.Helper()
	if os.Geteuid() == 0 {
		t.Skip("running as root: file permission bits do not apply")
		return false
	}
	fn()
	return true
}
