package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestKernelOverlay is the kernel acceptance of `realize mount --mode
// overlay` (SPEC §4.7, Linux; docs/decisions/0012-overlay-mount.md and
// 0014-kernel-caches.md): two daemons, each with its share mounted by
// `realize mount` as overlayfs (the all-files NFS view below, the real
// directory above). See test/kernel/scripts/mount.sh.
func TestKernelOverlay(t *testing.T) { runMountAcceptance(t, "overlay") }

// TestKernelMountNFS is the same acceptance with `realize mount --mode
// nfs`, the macOS path (the merged read-write NFS view), under Linux.
func TestKernelMountNFS(t *testing.T) { runMountAcceptance(t, "nfs") }

// runMountAcceptance runs test/kernel/scripts/mount.sh in one mode: two
// daemons in the guest (overlayfs cannot use UML's hostfs as an upper
// layer, so both run beside their real directories on the guest's tmpfs),
// each mounting its own share: create, edit, delete and directory rename
// each way, unpin then append, pin/unpin while a process writes, and a
// name looked up before it existed.
func runMountAcceptance(t *testing.T, mode string) {
	requireKernel(t)
	if testing.Short() {
		t.Skip("slow: two daemons in a user-mode kernel")
	}
	// The guest has no libc: a static binary, reached through hostfs.
	bin := t.TempDir()
	os.Chmod(bin, 0o755)
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "realize"), "github.com/realizefs/realize/cmd/realize")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building a static realize: %v\n%s", err, out)
	}
	if strings.ContainsAny(bin, " ,") {
		t.Skipf("hostfs cannot mount %q (space or comma)", bin)
	}
	t.Setenv("KTEST_MEM", "768M") // two daemons
	r := runGuest(t, filepath.Join(kernelDir, "scripts", "mount.sh"), 5*time.Minute, map[string]string{"BIN_DIR": bin, "MODE": mode})
	for _, l := range strings.Split(r.out, "\n") {
		if strings.Contains(l, "timing:") || strings.Contains(l, "limitation") || strings.Contains(l, "unpin/pin while writing") {
			t.Log(strings.TrimSpace(l))
		}
	}
	if !r.passed() {
		t.Fatalf("the %s mount acceptance failed in the guest (exit %d):\n%s\nthe whole console:\n%s", mode, r.code, r.failures(), r.out)
	}
}
