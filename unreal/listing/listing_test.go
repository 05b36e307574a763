package listing

import (
	"slices"
	"testing"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/internal/store"
	bolt "go.etcd.io/bbolt"
)

func openDB(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(t.Context(), t.TempDir(), store.Options{Peer: realize.PeerID{9}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestMarksInherit(t *testing.T) {
	db := openDB(t)
	set := func(p realize.Path, m Mark) {
		t.Helper()
		if err := db.Update(func(tx *bolt.Tx) error { return SetMark(tx, "a", p, m) }); err != nil {
			t.Fatal(err)
		}
	}
	set("docs", Pin)
	set("docs/old", Unpin)
	set("docs/old/keep.txt", Pin)
	set("music", Unpin)
	tests := []struct {
		path   realize.Path
		dflt   bool
		want   Mark
		source realize.Path
	}{
		{"docs", false, Pin, "docs"},
		{"docs/x/y.txt", false, Pin, "docs"},
		{"docs/old/z", false, Unpin, "docs/old"},
		{"docs/old/keep.txt", false, Pin, "docs/old/keep.txt"},
		{"docsx", false, Unpin, ""},
		{"other", true, Pin, ""},
		{"music/a", true, Unpin, "music"},
	}
	for _, tt := range tests {
		_ = db.View(func(tx *bolt.Tx) error {
			m, src := Effective(tx, "a", tt.path, tt.dflt)
			if m != tt.want || src != tt.source {
				t.Errorf("Effective(%q, default pinned %v) = %v from %q, want %v from %q", tt.path, tt.dflt, m, src, tt.want, tt.source)
			}
			return nil
		})
	}
	// Marking a directory again clears the marks below it; the root works.
	set("docs", Unpin)
	_ = db.View(func(tx *bolt.Tx) error {
		if m, src := Effective(tx, "a", "docs/old/keep.txt", false); m != Unpin || src != "docs" {
			t.Errorf("after re-marking docs: %v from %q", m, src)
		}
		return nil
	})
	set("", Pin)
	_ = db.View(func(tx *bolt.Tx) error {
		if m, src := Effective(tx, "a", "docs/old/keep.txt", false); m != Pin || src != "" {
			t.Errorf("root mark: %v from %q", m, src)
		}
		return nil
	})
}

func TestHolders(t *testing.T) {
	db := openDB(t)
	self, x, y := realize.PeerID{1}, realize.PeerID{2}, realize.PeerID{3}
	b1, b2 := realize.Hash{0xb1}, realize.Hash{0xb2}
	file := func(peer realize.PeerID, op realize.Op, p, from realize.Path, blob realize.Hash, unreal bool) *realize.Entry {
		return &realize.Entry{Arena: "a", Peer: peer, Op: op, Path: p, From: from, Unreal: unreal,
			Meta: realize.Meta{Kind: realize.KindFile, Blob: blob, Size: 1}}
	}
	steps := []struct {
		e      *realize.Entry
		b1, b2 []realize.PeerID
	}{
		{file(x, realize.OpAdd, "f", "", b1, false), []realize.PeerID{x}, nil},
		{file(y, realize.OpAdd, "f", "", b1, true), []realize.PeerID{x}, nil},
		{file(self, realize.OpAdd, "f", "", b1, false), []realize.PeerID{x}, nil},
		{file(y, realize.OpRealize, "f", "", b1, false), []realize.PeerID{x, y}, nil},
		{file(x, realize.OpRename, "g", "f", b1, false), []realize.PeerID{x, y}, nil},
		{file(x, realize.OpReplace, "g", "", b2, false), []realize.PeerID{y}, []realize.PeerID{x}},
		{file(y, realize.OpUnrealize, "f", "", b1, true), nil, []realize.PeerID{x}},
		{&realize.Entry{Arena: "a", Peer: x, Op: realize.OpRemove, Path: "g"}, nil, nil},
	}
	for i, s := range steps {
		if err := db.Update(func(tx *bolt.Tx) error { return Observe(tx, s.e) }); err != nil {
			t.Fatal(err)
		}
		_ = db.View(func(tx *bolt.Tx) error {
			if got := Holders(tx, b1, self); !slices.Equal(got, s.b1) {
				t.Errorf("step %d: holders of b1 = %v, want %v", i, got, s.b1)
			}
			if got := Holders(tx, b2, self); !slices.Equal(got, s.b2) {
				t.Errorf("step %d: holders of b2 = %v, want %v", i, got, s.b2)
			}
			return nil
		})
	}
}

// TestForgetAndHeld: Forget drops everything one peer was known to hold in
// one arena (paths in subdirectories too), and nothing of other peers or
// arenas; Held records a holder as a snapshot says.
func TestForgetAndHeld(t *testing.T) {
	db := openDB(t)
	a, b, self := realize.PeerID{1}, realize.PeerID{2}, realize.PeerID{9}
	x, y := realize.Hash{0x10}, realize.Hash{0x20}
	err := db.Update(func(tx *bolt.Tx) error {
		for _, h := range []struct {
			arena realize.ArenaName
			peer  realize.PeerID
			path  realize.Path
			blob  realize.Hash
		}{{"docs", a, "d/x", x}, {"docs", a, "y", y}, {"docs", b, "d/x", x}, {"other", a, "x", x}} {
			if err := Held(tx, h.arena, h.peer, h.path, h.blob); err != nil {
				return err
			}
		}
		return Forget(tx, "docs", a)
	})
	if err != nil {
		t.Fatal(err)
	}
	db.View(func(tx *bolt.Tx) error {
		if got := PathHolders(tx, "docs", "d/x", x, self); !slices.Equal(got, []realize.PeerID{b}) {
			t.Errorf("holders of docs:d/x = %v, want b only", got)
		}
		if got := Holders(tx, y, self); len(got) != 0 {
			t.Errorf("holders of y = %v, want none", got)
		}
		if got := PathHolders(tx, "other", "x", x, self); !slices.Equal(got, []realize.PeerID{a}) {
			t.Errorf("holders of other:x = %v, want a (another arena)", got)
		}
		return nil
	})
}
