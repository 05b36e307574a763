package real

import (
	"os"
	"runtime"
	"syscall"
	"testing"
	"unsafe"
)

// asUnprivileged runs fn so that file permission bits apply to it, and
// reports whether it ran. Tests here often run as root, which reads any
// file regardless of its mode; so fn runs on an OS thread of its own that
// has dropped the capabilities that bypass permission checks. Capabilities
// are per thread on Linux, and the thread exits with the goroutine, so the
// rest of the process keeps its privileges.
func asUnprivileged(t *testing.T, fn func()) bool {
	t.Helper()
	if os.Geteuid() != 0 {
		fn()
		return true
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with this goroutine
		if err := dropDACCapabilities(); err != nil {
			errc <- err
			return
		}
		fn()
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Skipf("running as root and cannot drop CAP_DAC_OVERRIDE on a thread (%v): permission checks untestable here", err)
		return false
	}
	return true
}

const (
	linuxCapabilityVersion3 = 0x20080522
	capDACOverride          = 1
	capDACReadSearch        = 2
)

type capHeader struct {
	version uint32
	pid     int32
}

type capData struct {
	effective, permitted, inheritable uint32
}

// dropDACCapabilities removes CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from
// the calling thread's effective set.
func dropDACCapabilities() error {
	hdr := capHeader{version: linuxCapabilityVersion3}
	var data [2]capData
	if _, _, e := syscall.RawSyscall(syscall.SYS_CAPGET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); e != 0 {
		return e
	}
	data[0].effective &^= 1<<capDACOverride | 1<<capDACReadSearch
	if _, _, e := syscall.RawSyscall(syscall.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); e != 0 {
		return e
	}
	return nil
}
