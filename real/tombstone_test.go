package real_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/real"
)

// TestDropTombstones: only tombstones the caller names go, over several
// pages of records; a path recreated afterwards is a new file, recorded
// from scratch; the index still agrees with the history.
func TestDropTombstones(t *testing.T) {
	f := newFixture(t)
	const n = 2500 // more than a page of records
	for i := 0; i < n; i++ {
		f.write(fmt.Sprintf("d/f%04d", i), "x")
	}
	f.write("keep", "kept")
	f.scan()
	for i := 0; i < n; i++ {
		os.Remove(filepath.Join(f.root, fmt.Sprintf("d/f%04d", i)))
	}
	f.scan()
	asked := 0
	dropped, err := f.arena.DropTombstones(t.Context(), func(p realize.Path, r *real.Record) bool {
		asked++
		return p != "d/f0007" // kept: not every peer has that deletion, say
	})
	if err != nil {
		t.Fatal(err)
	}
	if dropped != n-1 {
		t.Errorf("dropped %d tombstones, want %d", dropped, n-1)
	}
	if asked < n {
		t.Errorf("asked about %d records, want every tombstone", asked)
	}
	if r := f.record("d/f0001"); r != nil {
		t.Errorf("d/f0001 still recorded: %+v", r)
	}
	if r := f.record("d/f0007"); r == nil || !r.Deleted {
		t.Errorf("d/f0007 = %+v, want its tombstone", r)
	}
	if r := f.record("keep"); r == nil || r.Deleted {
		t.Errorf("live record touched: %+v", r)
	}
	f.write("d/f0001", "again")
	f.scan()
	if r := f.record("d/f0001"); r == nil || r.Deleted || len(r.Version) != 1 {
		t.Errorf("recreated d/f0001 = %+v", r)
	}
	checkConsistent(t, f)
	if err := real.CheckAgainstHistory(f.db, "test", f.log, f.self); err != nil {
		t.Error(err)
	}
}

// TestDroppedResolutionTombstoneRemembered: the tombstone of a path whose
// version carried the resolution counter leaves its vector when dropped,
// so a version it covered is still recognised (Forgotten); a newer
// resolution is not, and a plain tombstone leaves nothing.
func TestDroppedResolutionTombstoneRemembered(t *testing.T) {
	f := newFixture(t)
	rc := realize.ResolveCounter()
	resolved := realize.VersionVector{remote: 3, rc: 1}
	alt, fill := remoteFile("kept by a resolution", 1_000_000_000, resolved)
	if err := apply(t, f, "r.txt", realize.OpResolve, alt, fill); err != nil {
		t.Fatal(err)
	}
	f.write("plain.txt", "plain")
	f.scan()
	os.Remove(filepath.Join(f.root, "r.txt"))
	os.Remove(filepath.Join(f.root, "plain.txt"))
	f.scan()
	n, err := f.arena.DropTombstones(t.Context(), func(realize.Path, *real.Record) bool { return true })
	if err != nil || n != 2 {
		t.Fatalf("dropped %d tombstones (%v), want 2", n, err)
	}
	for _, c := range []struct {
		path realize.Path
		v    realize.VersionVector
		want bool
	}{
		{"r.txt", resolved, true},
		{"r.txt", realize.VersionVector{remote: 2, rc: 1}, true},
		{"r.txt", realize.VersionVector{remote: 3, rc: 2}, false},
		{"plain.txt", realize.VersionVector{remote: 1, rc: 1}, false},
	} {
		if got, err := f.arena.Forgotten(c.path, c.v); err != nil || got != c.want {
			t.Errorf("Forgotten(%s, %v) = %v, %v; want %v", c.path, c.v, got, err, c.want)
		}
	}
}
