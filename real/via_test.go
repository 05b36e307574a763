package real

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/realizefs/realize"
)

// Without a mount, or when the mount fails an operation, via changes the
// real directory directly.
func TestViaFallsBackToTheRealDirectory(t *testing.T) {
	root := t.TempDir()
	a := &Arena{root: root, logger: slog.New(slog.DiscardHandler)}
	for _, v := range []via{{a: a}, {a: a, mnt: filepath.Join(t.TempDir(), "not-mounted")}} {
		if err := v.mkdir("d"); err != nil {
			t.Fatalf("mkdir (mount %q): %v", v.mnt, err)
		}
		if err := os.WriteFile(filepath.Join(root, "d", "tmp"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := v.rename("d/tmp", "d/f"); err != nil {
			t.Fatalf("rename (mount %q): %v", v.mnt, err)
		}
		if got, err := os.ReadFile(filepath.Join(root, "d", "f")); err != nil || string(got) != "x" {
			t.Fatalf("after rename (mount %q): %q %v", v.mnt, got, err)
		}
		for _, p := range []realize.Path{"d/f", "d"} {
			if err := v.remove(p); err != nil {
				t.Fatalf("remove %s (mount %q): %v", p, v.mnt, err)
			}
		}
		if _, err := os.Lstat(filepath.Join(root, "d")); !os.IsNotExist(err) {
			t.Fatalf("d still there (mount %q): %v", v.mnt, err)
		}
	}
}
