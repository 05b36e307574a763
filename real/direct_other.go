//go:build !linux

package real

import (
	"errors"
	"os"
)

// openDirect: the page cache is always used here.
func openDirect(string) (*os.File, error) { return nil, errors.ErrUnsupported }
