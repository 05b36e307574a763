//go:build !linux && !darwin

package real

import "os"

// openFlags: without a portable O_NOFOLLOW here, HashFile relies on its
// checks of the open file (it must be regular and match the caller's stat).
const openFlags = os.O_RDONLY

// sysStat leaves inode and change time zero: only Linux and macOS are
// supported targets, other systems only have to build.
func sysStat(os.FileInfo, *Stat) {}
