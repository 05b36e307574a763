package real_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/real"
	bolt "go.etcd.io/bbolt"
)

var other = realize.PeerID{0xdd}

// conflictAt makes doc.txt a conflict here: the local "mine" loses to a
// remote version and is kept aside. It returns the loser.
func conflictAt(t *testing.T, f *fixture) realize.Alternative {
	t.Helper()
	f.write("doc.txt", "mine")
	f.scan()
	mine := f.record("doc.txt").Alternative()
	theirs, fill := remoteFile("theirs", 9, realize.VersionVector{remote: 1})
	merged := theirs
	merged.Version = mine.Version.Merge(theirs.Version)
	err := f.arena.Place(t.Context(), "doc.txt", func([]realize.Alternative) (*real.Change, error) {
		return &real.Change{Op: realize.OpReplace, Result: merged, Own: theirs.Version, Fill: fill,
			Others: []realize.Alternative{mine}, Losers: []realize.Alternative{mine}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return mine
}

// lost is a decision made elsewhere that named l a loser, against a
// version of a third peer.
func lost(l realize.Alternative) real.Decided {
	return real.Decided{Losers: []realize.Alternative{l}, At: l.Version.With(realize.PeerID{0xee}, 1)}
}

func (f *fixture) listed(p realize.Path) []real.Conflict {
	f.t.Helper()
	cs, err := f.arena.ConflictsAt(p)
	if err != nil {
		f.t.Fatal(err)
	}
	return cs
}

// TestDropForgetsAndFrees: a resolution's drop vector removes the versions
// it covers, keeps the others, frees kept bytes no version needs any more,
// and keeps a covered version from being listed again when an entry
// naming it arrives late.
func TestDropForgetsAndFrees(t *testing.T) {
	f := newFixture(t)
	mine := conflictAt(t, f)
	// A second kept-aside version, concurrent with everything here, with
	// the same bytes as mine at another path and its own at this one.
	late := realize.Alternative{Origin: other, Version: realize.VersionVector{other: 5},
		Meta: realize.Meta{Kind: realize.KindFile, Size: 4, Blob: realize.Hash{7}}}
	if err := f.arena.RecordConflicts("doc.txt", lost(late), realize.Hash{}); err != nil {
		t.Fatal(err)
	}
	if err := f.arena.RecordConflicts("elsewhere.txt", lost(mine), realize.Hash{}); err != nil {
		t.Fatal(err)
	}
	if n := len(f.listed("doc.txt")); n != 2 {
		t.Fatalf("%d versions listed, want 2", n)
	}
	drop := f.record("doc.txt").Version // what a resolution here saw
	if err := f.arena.Drop("doc.txt", drop, realize.Hash{}); err != nil {
		t.Fatal(err)
	}
	if cs := f.listed("doc.txt"); len(cs) != 1 || cs[0].Origin != other {
		t.Fatalf("after the drop: %+v, want only the concurrent version", cs)
	}
	if _, ok := f.arena.ConflictBytes(mine.Meta.Blob); !ok {
		t.Fatal("bytes freed while another path's kept version still needs them")
	}
	// Relayed late: the entry of the conflict that named mine. Not again.
	if err := f.arena.RecordConflicts("doc.txt", lost(mine), realize.Hash{}); err != nil {
		t.Fatal(err)
	}
	if n := len(f.listed("doc.txt")); n != 1 {
		t.Fatalf("a dropped version came back: %d listed", n)
	}
	// The last user of the bytes goes: they go too, and the directory.
	if err := f.arena.Drop("elsewhere.txt", mine.Version, realize.Hash{}); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.arena.ConflictBytes(mine.Meta.Blob); ok {
		t.Fatal("bytes of a dropped version still kept")
	}
	if _, err := os.Lstat(filepath.Join(f.root, real.ConflictDir)); !os.IsNotExist(err) {
		t.Errorf("empty %s left: %v", real.ConflictDir, err)
	}
	// A drop covering the first one replaces it; one it does not cover
	// is kept beside it.
	if err := f.arena.Drop("doc.txt", late.Version, realize.Hash{}); err != nil {
		t.Fatal(err)
	}
	if n := len(f.listed("doc.txt")); n != 0 {
		t.Fatalf("%d listed after dropping the last one", n)
	}
	if n := len(f.dropped("doc.txt")); n != 2 {
		t.Errorf("%d drop vectors kept, want 2 (neither covers the other)", n)
	}
	if err := f.arena.Drop("doc.txt", drop.Merge(late.Version), realize.Hash{}); err != nil {
		t.Fatal(err)
	}
	if n := len(f.dropped("doc.txt")); n != 1 {
		t.Errorf("%d drop vectors kept, want 1 (the new one covers both)", n)
	}
	checkConsistent(t, f)
}

func (f *fixture) dropped(p realize.Path) []realize.VersionVector {
	f.t.Helper()
	var out []realize.VersionVector
	err := f.db.View(func(tx *bolt.Tx) error {
		ix, err := real.OpenIndex(tx, "test")
		if err == nil {
			out, err = ix.Dropped(p)
		}
		return err
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return out
}

// TestDropKeepsNamedBlob: the bytes of the version a resolution keeps are
// left in place until it is placed (they may be the only copy here).
func TestDropKeepsNamedBlob(t *testing.T) {
	f := newFixture(t)
	mine := conflictAt(t, f)
	if err := f.arena.Drop("doc.txt", mine.Version.With(remote, 1), mine.Meta.Blob); err != nil {
		t.Fatal(err)
	}
	if n := len(f.listed("doc.txt")); n != 0 {
		t.Fatalf("%d listed", n)
	}
	if _, ok := f.arena.ConflictBytes(mine.Meta.Blob); !ok {
		t.Fatal("the kept version's bytes were freed before being placed")
	}
	if err := f.arena.FreeKept(mine.Meta.Blob); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.arena.ConflictBytes(mine.Meta.Blob); ok {
		t.Fatal("FreeKept left them")
	}
}
