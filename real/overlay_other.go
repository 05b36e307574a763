//go:build !linux

package real

import (
	"errors"
	"os"
)

// Overlayfs is Linux only: elsewhere the real directory has no overlay
// marks, and unpin has no lease to take.

func isWhiteout(os.FileInfo) bool            { return false }
func getXattr(string, string) (string, bool) { return "", false }
func removeXattr(string, string) error       { return nil }

type unpinLease struct{}

var errOpenElsewhere = errors.New("the file is open; unpin it once it is closed")

func takeUnpinLease(string) (*unpinLease, error) { return nil, nil }
func (*unpinLease) broken() bool                 { return false }
func (*unpinLease) release()                     {}

func overlayOver(string) string { return "" }

// IsWhiteout tells whether info is an overlayfs whiteout (Linux only).
func IsWhiteout(os.FileInfo) bool { return false }
