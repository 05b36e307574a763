//go:build unix

package main

import (
	"path/filepath"
	"syscall"
)

// isMountPoint tells whether dir is the root of a mount: its device
// differs from its parent's (or it is its own parent).
func isMountPoint(dir string) bool {
	var st, parent syscall.Stat_t
	if syscall.Stat(dir, &st) != nil || syscall.Stat(filepath.Dir(dir), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev || st.Ino == parent.Ino
}
