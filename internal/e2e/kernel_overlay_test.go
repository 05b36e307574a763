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
// overlay` (SPEC §4.7, Linux; docs/decisions/0012-overlay-mount.md): two
// daemons, each with its share mounted by `realize mount` as overlayfs
// (the all-files NFS view below, the real directory above). They run in
// the guest, beside their real directories: overlayfs cannot use UML's
// hostfs as an upper layer (it mounts read-only), so the guest's tmpfs
// holds them. See test/kernel/scripts/overlay.sh: create, edit of an
// unreal file (copy-up), delete (whiteout), directory rename (redirect),
// and pin/unpin while a process writes through the mount.
func TestKernelOverlay(t *testing.T) {
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
	r := runGuest(t, filepath.Join(kernelDir, "scripts", "overlay.sh"), 5*time.Minute, map[string]string{"BIN_DIR": bin})
	for _, l := range strings.Split(r.out, "\n") {
		if strings.Contains(l, "timing:") || strings.Contains(l, "KNOWN ISSUE") || strings.Contains(l, "unpin/pin while writing") {
			t.Log(strings.TrimSpace(l))
		}
	}
	if !r.passed() {
		t.Fatalf("the overlay acceptance failed in the guest (exit %d):\n%s", r.code, r.out)
	}
}
