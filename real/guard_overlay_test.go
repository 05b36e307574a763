//go:build linux

package real_test

import (
	"os"
	"path/filepath"
	"testing"
)

// TestDeleteGuardOverlayWhiteout: `rm -rf` of a directory through an
// overlay mount (a whiteout over it, real files gone from the upper, unreal
// ones hidden) is held like any mass deletion: the whiteout stays, since
// it is what says the files are gone, and approving records and consumes it.
func TestDeleteGuardOverlayWhiteout(t *testing.T) {
	g := newGuardFixture(t, 50)
	g.write("keep", "k")
	g.files("d", 19)
	g.unrealize("d", 0, 9)
	if err := os.RemoveAll(filepath.Join(g.root, "d")); err != nil {
		t.Fatal(err)
	}
	g.whiteout("d")
	g.scan()
	g.expect()
	h := g.arena.Hold()
	if h == nil || h.Files != 19 || h.Dirs != 1 || len(h.Sample) != 1 || h.Sample[0] != "d" {
		t.Fatalf("hold = %+v", h)
	}
	if _, err := os.Lstat(filepath.Join(g.root, "d")); err != nil {
		t.Fatalf("the held whiteout was consumed: %v", err)
	}
	g.scan()
	g.expect()
	files, dirs, err := g.arena.Approve(t.Context())
	if err != nil || files != 19 || dirs != 1 {
		t.Fatalf("approve = %d files, %d dirs, %v", files, dirs, err)
	}
	if n := g.removals(); n != 19 {
		t.Fatalf("%d removals recorded, want 19", n)
	}
	g.absent("d")
	if r := g.record("d/f000"); r == nil || !r.Deleted {
		t.Fatalf("d/f000 after approve: %+v", r)
	}
	checkConsistent(t, g.fixture)
}
