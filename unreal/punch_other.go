//go:build !linux

package unreal

import "os"

// punchHole does nothing here: the evicted block is only forgotten (it is
// refetched when read), and its disk space comes back when the whole blob
// is evicted or dropped. macOS could punch with fcntl(F_PUNCHHOLE), which
// is not wired up yet.
func punchHole(f *os.File, off, size int64) error { return nil }
