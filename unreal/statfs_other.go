//go:build !(linux || darwin || freebsd)

package unreal

import "errors"

// statDisk is not available here: the quota is Max in bytes alone (a
// percentage of an unknown disk stores nothing, see limitLocked).
func statDisk(dir string) (total, free int64, err error) {
	return 0, 0, errors.New("disk size unknown on this system")
}
