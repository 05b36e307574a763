package household

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/history"
	"github.com/realizefs/realize/internal/store"
	"github.com/realizefs/realize/real"
	"github.com/zeebo/blake3"
)

// syncNode gives node a an indexed arena per name, each with one file, and
// registers the sync handlers over them.
func syncNode(t *testing.T, n *node, arenas ...realize.ArenaName) map[realize.ArenaName]realize.Hash {
	t.Helper()
	blobs, _ := syncArenas(t, n, arenas...)
	return blobs
}

// syncArenas is syncNode, also returning the arenas.
func syncArenas(t *testing.T, n *node, arenas ...realize.ArenaName) (map[realize.ArenaName]realize.Hash, map[realize.ArenaName]*real.Arena) {
	t.Helper()
	db, err := store.Open(t.Context(), t.TempDir(), store.Options{Peer: n.ident.ID()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	log := history.New(n.ident.ID(), n.ident, nil)
	byName := map[realize.ArenaName]*real.Arena{}
	blobs := map[realize.ArenaName]realize.Hash{}
	for _, name := range arenas {
		root := t.TempDir()
		content := []byte("content of " + string(name))
		os.WriteFile(filepath.Join(root, "f.txt"), content, 0o644)
		a, err := real.NewArena(real.ArenaOptions{Name: name, Root: root, DB: db, Log: log, Self: n.ident.ID()})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.ScanAll(t.Context()); err != nil {
			t.Fatal(err)
		}
		byName[name], blobs[name] = a, blake3.Sum256(content)
	}
	if err := RegisterSync(n.mux, &SyncData{DB: db, Log: log, Arena: func(a realize.ArenaName) *real.Arena { return byName[a] }}); err != nil {
		t.Fatal(err)
	}
	return blobs, byName
}

// TestSyncServesOnlySharedArenas: a known peer asking for an arena that is
// not shared with it gets a Permission error and no data, whatever the
// message; a blob of an unshared arena cannot be had through a shared one.
func TestSyncServesOnlySharedArenas(t *testing.T) {
	a, b := newNode(t, "a", true), newNode(t, "b", true)
	blobs := syncNode(t, a, "open", "secret")
	syncNode(t, b) // a caller registers the types too: it bounds their responses
	a.start()
	b.start()
	a.know(b)
	b.know(a)
	a.share(b, "open")           // a keeps "secret" to itself
	b.share(a, "open", "secret") // b would like both
	for _, n := range []*node{a, b} {
		if err := n.host.Reconcile(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	c := connected(t, b, a)
	waitFor(t, 5e9, "hello", func() bool { return len(c.SharedArenas()) == 1 })
	src, blk := PeerSource{Conn: c}, Blocks{Host: b.host}
	ctx := t.Context()

	heads, err := src.Logs(ctx, "open")
	if err != nil || len(heads) != 1 || heads[0].Seq == 0 {
		t.Fatalf("open logs: %v %v", heads, err)
	}
	page, err := src.Page(ctx, "open", a.ident.ID(), 1)
	if err != nil || page == nil || len(page.Entries) == 0 {
		t.Fatalf("open page: %v %v", page, err)
	}
	var got []byte
	err = blk.ReadBlocks(ctx, a.ident.ID(), "open", blobs["open"], 0, 1, func(_ int, d []byte) error { got = append(got, d...); return nil })
	if err != nil || string(got) != "content of open" {
		t.Fatalf("open blocks: %q %v", got, err)
	}

	for name, call := range map[string]func() error{
		"logs":      func() error { _, err := src.Logs(ctx, "secret"); return err },
		"page":      func() error { _, err := src.Page(ctx, "secret", a.ident.ID(), 1); return err },
		"block map": func() error { _, err := blk.BlockMap(ctx, a.ident.ID(), "secret", blobs["secret"]); return err },
		"blocks": func() error {
			return blk.ReadBlocks(ctx, a.ident.ID(), "secret", blobs["secret"], 0, 1, func(int, []byte) error {
				t.Error("got bytes of an unshared arena")
				return nil
			})
		},
		"watch": func() error {
			return src.Watch(ctx, "secret", func([]history.LogHead) error { t.Error("got heads of an unshared arena"); return nil })
		},
	} {
		if err := call(); realize.KindOf(err) != realize.Permission {
			t.Errorf("%s of an unshared arena: %v, want a permission error", name, err)
		}
	}
	// The secret blob through the shared arena: not there.
	if _, err := blk.BlockMap(ctx, a.ident.ID(), "open", blobs["secret"]); realize.KindOf(err) != realize.NotExist {
		t.Errorf("secret blob via the open arena: %v, want not-exist", err)
	}
}

// TestSnapshotSaysWhatSourceHolds: a snapshot lists every path with its
// frontier and, since revision 2, whether the source keeps it real.
func TestSnapshotSaysWhatSourceHolds(t *testing.T) {
	a, b := newNode(t, "a", true), newNode(t, "b", true)
	blobs := syncNode(t, a, "open")
	syncNode(t, b)
	c := sharing(t, a, b, "open")
	src := PeerSource{Conn: c}
	if src.Peer() != a.ident.ID() {
		t.Errorf("source peer %s, want a", src.Peer().Short())
	}
	var got []real.Snap
	if err := src.Snapshot(t.Context(), "open", func(s real.Snap) error { got = append(got, s); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Path != "f.txt" || !got[0].Held || len(got[0].Frontier) != 1 || got[0].Frontier[0].Meta.Blob != blobs["open"] {
		t.Fatalf("snapshot = %+v", got)
	}
}

// TestSnapshotCarriesConflicts: since revision 2 a snapshot carries each
// path's conflict bookkeeping — kept versions with their namings, drop
// vectors, wins — also for a path with no record left (no versions).
func TestSnapshotCarriesConflicts(t *testing.T) {
	a, b := newNode(t, "a", true), newNode(t, "b", true)
	_, arenas := syncArenas(t, a, "open")
	syncNode(t, b)
	other, rc := realize.PeerID{7}, realize.ResolveCounter()
	kept := realize.Alternative{Origin: other, Version: realize.VersionVector{other: 4},
		Meta: realize.Meta{Kind: realize.KindFile, Size: 3, MTime: 5, Blob: realize.Hash{1}}}
	want := &real.ConflictState{
		Kept:  []real.Conflict{{Alternative: kept, Named: []realize.VersionVector{{other: 4, a.ident.ID(): 2}}}},
		Drops: []realize.VersionVector{{other: 2, rc: 1}},
		Wins:  []real.Win{{Origin: a.ident.ID(), Blob: realize.Hash{2}, Own: realize.VersionVector{a.ident.ID(): 9}, At: []realize.VersionVector{{a.ident.ID(): 9, other: 1}}}},
	}
	if err := arenas["open"].MergeConflicts("gone.txt", want, realize.Hash{}); err != nil {
		t.Fatal(err)
	}
	c := sharing(t, a, b, "open")
	got := map[realize.Path]real.Snap{}
	err := PeerSource{Conn: c}.Snapshot(t.Context(), "open", func(s real.Snap) error { got[s.Path] = s; return nil })
	if err != nil {
		t.Fatal(err)
	}
	s, ok := got["gone.txt"]
	if !ok || len(s.Frontier) != 0 || s.Conflicts == nil {
		t.Fatalf("gone.txt in the snapshot: %+v (present %v)", s, ok)
	}
	g := s.Conflicts
	if len(g.Kept) != 1 || g.Kept[0].Meta != kept.Meta || g.Kept[0].Origin != other ||
		g.Kept[0].Version.Compare(kept.Version) != realize.Equal || len(g.Kept[0].Named) != 1 ||
		g.Kept[0].Named[0].Compare(want.Kept[0].Named[0]) != realize.Equal {
		t.Errorf("kept %+v, want %+v", g.Kept, want.Kept)
	}
	if len(g.Drops) != 1 || g.Drops[0].Compare(want.Drops[0]) != realize.Equal {
		t.Errorf("drops %v, want %v", g.Drops, want.Drops)
	}
	if len(g.Wins) != 1 || g.Wins[0].Blob != want.Wins[0].Blob || g.Wins[0].Own.Compare(want.Wins[0].Own) != realize.Equal ||
		len(g.Wins[0].At) != 1 || g.Wins[0].At[0].Compare(want.Wins[0].At[0]) != realize.Equal {
		t.Errorf("wins %+v, want %+v", g.Wins, want.Wins)
	}
	if f := got["f.txt"]; f.Conflicts != nil {
		t.Errorf("f.txt has no conflicts, got %+v", f.Conflicts)
	}
}

func TestConflictStatesCheckIndices(t *testing.T) {
	recs := make([]SnapRecord, 3)
	tests := []struct {
		idx []uint32
		ok  bool
	}{
		{nil, true},
		{[]uint32{0, 2}, true},
		{[]uint32{3}, false},
		{[]uint32{1, 1}, false},
		{[]uint32{2, 0}, false},
	}
	for _, tc := range tests {
		var cs []SnapConflicts
		for _, i := range tc.idx {
			cs = append(cs, SnapConflicts{Index: i})
		}
		set, err := conflictStates(SnapshotFrame{Records: recs, Conflicts: cs})
		if (err == nil) != tc.ok || err == nil && len(set) != len(tc.idx) {
			t.Errorf("conflictStates(%v) = %v, %v; want ok=%v", tc.idx, set, err, tc.ok)
		}
	}
	big := SnapConflicts{Drops: make([][]WireHead, maxSnapMarks+1)}
	if _, err := conflictStates(SnapshotFrame{Records: recs, Conflicts: []SnapConflicts{big}}); err == nil {
		t.Error("an oversized list of drop vectors was taken")
	}
}

func TestHeldSetChecksIndices(t *testing.T) {
	recs := make([]SnapRecord, 3)
	tests := []struct {
		held []uint32
		ok   bool
	}{
		{nil, true},
		{[]uint32{0, 2}, true},
		{[]uint32{3}, false},    // beyond the records
		{[]uint32{1, 1}, false}, // repeated
		{[]uint32{2, 0}, false}, // not increasing
	}
	for _, tc := range tests {
		set, err := heldSet(SnapshotFrame{Records: recs, Held: tc.held})
		if (err == nil) != tc.ok {
			t.Errorf("heldSet(%v) err = %v, want ok=%v", tc.held, err, tc.ok)
		}
		if err == nil && len(set) != len(tc.held) {
			t.Errorf("heldSet(%v) = %v", tc.held, set)
		}
	}
}
