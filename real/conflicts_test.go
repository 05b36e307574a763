package real_test

import (
	"github.com/fxamacker/cbor/v2"
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

// TestWinEndsListingInAnyOrder: V lost in a decision at N1 (merged
// vector), then was shown again by a decision at M that covers N1. In
// either order of learning the two, V is not listed; a naming M covers
// arriving later does not list it again; one M does not cover (V lost
// again to something newer) does.
func TestWinEndsListingInAnyOrder(t *testing.T) {
	a, b, c := realize.PeerID{1}, realize.PeerID{2}, realize.PeerID{3}
	v := realize.Alternative{Origin: a, Version: realize.VersionVector{a: 5},
		Meta: realize.Meta{Kind: realize.KindFile, Size: 1, Blob: realize.Hash{9}}}
	n1 := realize.VersionVector{a: 5, b: 3}          // lost to b's version
	m := realize.VersionVector{a: 5, b: 4}           // b deleted its version: v shown
	later := realize.VersionVector{a: 5, b: 4, c: 1} // lost to c's, made after
	f := newFixture(t)
	orders := map[realize.ArenaName][]func(ix *real.Index) error{
		"named-first": {
			func(ix *real.Index) error { return ix.PutConflicts("p", []realize.Alternative{v}, n1) },
			func(ix *real.Index) error { _, err := ix.PutWin("p", v, m); return err },
		},
		"won-first": {
			func(ix *real.Index) error { _, err := ix.PutWin("p", v, m); return err },
			func(ix *real.Index) error { return ix.PutConflicts("p", []realize.Alternative{v}, n1) },
		},
	}
	for arena, steps := range orders {
		listedAfter := func(step func(ix *real.Index) error) int {
			t.Helper()
			var n int
			err := f.db.Update(func(tx *bolt.Tx) error {
				ix, err := real.OpenIndex(tx, arena)
				if err != nil {
					return err
				}
				if err := step(ix); err != nil {
					return err
				}
				cs, err := ix.ConflictsAt("p")
				n = len(cs)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		listedAfter(steps[0])
		if n := listedAfter(steps[1]); n != 0 {
			t.Errorf("%s: %d listed, want 0 (v is what the path shows)", arena, n)
		}
		if n := listedAfter(func(ix *real.Index) error { return ix.PutConflicts("p", []realize.Alternative{v}, n1) }); n != 0 {
			t.Errorf("%s: a naming the win covers listed v again", arena)
		}
		if n := listedAfter(func(ix *real.Index) error { return ix.PutConflicts("p", []realize.Alternative{v}, later) }); n != 1 {
			t.Errorf("%s: v lost again to a newer version, %d listed, want 1", arena, n)
		}
	}
}

// TestOldConflictRecordsRead: a record written before namings were kept
// (three fields) is still listed, and any win of its version ends it.
func TestOldConflictRecordsRead(t *testing.T) {
	f := newFixture(t)
	v := realize.Alternative{Origin: other, Version: realize.VersionVector{other: 2},
		Meta: realize.Meta{Kind: realize.KindFile, Size: 1, Blob: realize.Hash{4}}}
	old, err := cbor.Marshal([]any{v.Origin, v.Meta, v.Version})
	if err != nil {
		t.Fatal(err)
	}
	err = f.db.Update(func(tx *bolt.Tx) error {
		if _, err := real.OpenIndex(tx, "test"); err != nil {
			return err
		}
		key := append(append([]byte("p\x00"), v.Origin[:]...), v.Meta.Blob[:]...)
		return tx.Bucket([]byte("index")).Bucket([]byte("test")).Bucket([]byte("c")).Put(key, old)
	})
	if err != nil {
		t.Fatal(err)
	}
	if cs := f.listed("p"); len(cs) != 1 || cs[0].Origin != other {
		t.Fatalf("old record listed as %+v", cs)
	}
	err = f.db.Update(func(tx *bolt.Tx) error {
		ix, err := real.OpenIndex(tx, "test")
		if err == nil {
			_, err = ix.PutWin("p", v, v.Version.With(remote, 1))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if cs := f.listed("p"); len(cs) != 0 {
		t.Fatalf("old record still listed after a win: %+v", cs)
	}
}

// TestSnapshotCarriesConflictState: a snapshot yields each path's kept
// versions, drop vectors and wins — also for a path with no record left
// — and merging it into another arena lists the same versions there.
func TestSnapshotCarriesConflictState(t *testing.T) {
	f := newFixture(t)
	mine := conflictAt(t, f)
	if err := f.arena.RecordConflicts("gone.txt", lost(mine), realize.Hash{}); err != nil {
		t.Fatal(err)
	}
	if err := f.arena.Drop("gone.txt", realize.VersionVector{other: 1}, realize.Hash{}); err != nil {
		t.Fatal(err)
	}
	got := map[realize.Path]*real.ConflictState{}
	err := f.arena.Snapshot(func(s real.Snap) error {
		if _, dup := got[s.Path]; dup {
			t.Errorf("%s yielded twice", s.Path)
		}
		got[s.Path] = s.Conflicts
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []realize.Path{"doc.txt", "gone.txt"} {
		if s := got[p]; s == nil || len(s.Kept) != 1 || len(s.Kept[0].Named) != 1 {
			t.Fatalf("%s: snapshot state %+v, want the kept version with its naming", p, s)
		}
	}
	if len(got["gone.txt"].Drops) != 1 || len(got["doc.txt"].Wins) != 1 {
		t.Errorf("drops %v, wins %v: want gone.txt's drop and doc.txt's winner", got["gone.txt"].Drops, got["doc.txt"].Wins)
	}
	g := newFixture(t)
	for p, s := range got {
		if err := g.arena.MergeConflicts(p, s, realize.Hash{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []realize.Path{"doc.txt", "gone.txt"} {
		if a, b := f.listed(p), g.listed(p); len(a) != len(b) || len(a) != 1 || a[0].Meta.Blob != b[0].Meta.Blob {
			t.Errorf("%s: merged lists %+v, the source %+v", p, b, a)
		}
	}
}
