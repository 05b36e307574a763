package real_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/real"
)

// TestPlaceRecords: changes that only record are committed together, in
// one transaction; a change that needs bytes, or a path
// where the check fails, is left for Place; a nil decision does nothing.
func TestPlaceRecords(t *testing.T) {
	f := newFixture(t)
	f.write("here.txt", "local bytes")
	f.scan()
	f.expect("add here.txt")
	other := realize.PeerID{9}
	remote := func(blob byte) realize.Alternative {
		return realize.Alternative{Origin: other, Version: realize.VersionVector{other: 1},
			Meta: realize.Meta{Kind: realize.KindFile, Size: 5, MTime: 1e18, Blob: realize.Hash{blob}}}
	}
	fill := func(context.Context, *os.File, *real.Landed) error { return nil }
	decisions := map[realize.Path]*real.Change{
		"a/unreal1":  {Op: realize.OpAdd, Result: remote(1), Unreal: true},
		"a/unreal2":  {Op: realize.OpAdd, Result: remote(2), Unreal: true},
		"fetch.bin":  {Op: realize.OpAdd, Result: remote(3), Fill: fill},
		"here.txt":   {Op: realize.OpReplace, Result: remote(4), Unreal: true}, // real here: refused
		"unchanged":  nil,
		".realize-x": {Op: realize.OpAdd, Result: remote(5), Unreal: true}, // reserved
	}
	paths := []realize.Path{"a/unreal1", "a/unreal2", "fetch.bin", "here.txt", "unchanged", ".realize-x"}
	rest, err := f.arena.PlaceRecords(t.Context(), paths, func(i int, _ []realize.Alternative) (*real.Change, error) {
		return decisions[paths[i]], nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var left []realize.Path
	for _, i := range rest {
		left = append(left, paths[i])
	}
	if len(left) != 3 || left[0] != "fetch.bin" || left[1] != "here.txt" || left[2] != ".realize-x" {
		t.Fatalf("left for Place: %v", left)
	}
	f.expect("add a/unreal1", "add a/unreal2")
	for _, p := range []realize.Path{"a/unreal1", "a/unreal2"} {
		if r := f.record(p); r == nil || !r.IsUnreal() || r.Version[other] != 1 || r.Origin != other {
			t.Errorf("%s: record %+v", p, r)
		}
	}
	if r := f.record("fetch.bin"); r != nil {
		t.Errorf("fetch.bin recorded: %+v", r)
	}
	if r := f.record("here.txt"); r == nil || !r.IsReal() {
		t.Errorf("here.txt: record %+v", r)
	}
	if _, err := os.Lstat(filepath.Join(f.root, "a")); err == nil {
		t.Error("a directory was created for unreal files")
	}
	st, err := f.arena.Status()
	if err != nil || st.Counts.Files != 3 || st.Counts.Unreal != 2 {
		t.Errorf("counts %+v, %v", st.Counts, err)
	}
}
