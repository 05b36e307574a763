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
