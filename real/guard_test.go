package real_test

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/history"
	"github.com/realizefs/realize/internal/store"
	"github.com/realizefs/realize/real"
	bolt "go.etcd.io/bbolt"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// guardFixture is a fixture whose arena has a delete guard and a fake
// clock, and can be reopened on the same database (a restart).
type guardFixture struct {
	*fixture
	share  float64
	settle time.Duration
	clock  *fakeClock
}

func newGuardFixture(t *testing.T, share float64) *guardFixture {
	t.Helper()
	s := signer{ed25519.NewKeyFromSeed(make([]byte, 32))}
	db, err := store.Open(t.Context(), t.TempDir(), store.Options{Peer: s.ID()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	g := &guardFixture{
		fixture: &fixture{t: t, root: t.TempDir(), db: db, self: s.ID(), log: history.New(s.ID(), s, nil)},
		share:   share, clock: &fakeClock{now: time.Unix(1_800_000_000, 0)},
	}
	g.reopen()
	return g
}

// reopen makes a new indexer on the same database, as a restart does.
func (g *guardFixture) reopen() {
	g.t.Helper()
	a, err := real.NewArena(real.ArenaOptions{Name: "test", Root: g.root, DB: g.db, Log: g.log, Self: g.self, Workers: 2,
		Clock: g.clock, DeleteGuard: func() float64 { return g.share }, Settle: g.settle})
	if err != nil {
		g.t.Fatal(err)
	}
	g.arena = a
}

// files writes n files under dir and records them.
func (g *guardFixture) files(dir string, n int) {
	g.t.Helper()
	for i := range n {
		g.write(filepath.Join(dir, fmt.Sprintf("f%03d", i)), fmt.Sprint(i))
	}
	g.scan()
	g.newEntries()
}

func (g *guardFixture) rm(dir string, from, to int) {
	g.t.Helper()
	for i := from; i < to; i++ {
		if err := os.Remove(filepath.Join(g.root, dir, fmt.Sprintf("f%03d", i))); err != nil {
			g.t.Fatal(err)
		}
	}
}

func (g *guardFixture) removals() int {
	n := 0
	for _, e := range g.newEntries() {
		if len(e) > 7 && e[:7] == "remove " {
			n++
		}
	}
	return n
}

func TestDeleteGuardShare(t *testing.T) {
	cases := []struct {
		name          string
		share         float64
		arena, delete int
		held          bool
	}{
		{"most of the arena", 50, 20, 18, true},
		{"just over the share", 50, 20, 11, true},
		{"at the share", 50, 20, 10, false},
		{"under the share", 50, 20, 9, false},
		{"small arena, fewer than the minimum", 50, 9, 8, false},
		{"guard off", 0, 20, 18, false},
		{"low share, under the minimum count", 5, 100, 9, false},
		{"low share, at the minimum count", 5, 100, 10, true},
		{"share 100 never holds", 100, 20, 19, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := newGuardFixture(t, tc.share)
			g.write("keep", "k") // the root never turns empty here
			g.files("d", tc.arena-1)
			g.rm("d", 0, tc.delete)
			g.scan()
			got := g.removals()
			h := g.arena.Hold()
			if tc.held {
				if got != 0 || h == nil || h.Files != int64(tc.delete) || h.Reason != real.HoldShare {
					t.Fatalf("recorded %d removals, hold %+v; want all %d held", got, h, tc.delete)
				}
				return
			}
			if got != tc.delete || h != nil {
				t.Fatalf("recorded %d removals, hold %+v; want %d recorded, no hold", got, h, tc.delete)
			}
		})
	}
}

// TestDeleteGuardEmptyRoot: an arena directory found empty is held even
// with the share rule off (an unmounted disk), if the minimum is reached.
func TestDeleteGuardEmptyRoot(t *testing.T) {
	g := newGuardFixture(t, 0)
	g.files("a", 12)
	os.RemoveAll(filepath.Join(g.root, "a"))
	g.scan()
	g.expect()
	h := g.arena.Hold()
	if h == nil || h.Reason != real.HoldEmpty || h.Files != 12 || h.Dirs != 1 {
		t.Fatalf("hold = %+v, want 12 files and 1 dir held for an empty root", h)
	}
	if len(h.Sample) != 1 || h.Sample[0] != "a" {
		t.Fatalf("sample = %q, want the topmost held path only", h.Sample)
	}
	// Nothing from other peers is placed in it meanwhile (a disk not
	// mounted would hide it, then overwrite it with older files).
	err := g.arena.Place(t.Context(), "a/f000", func([]realize.Alternative) (*real.Change, error) {
		t.Fatal("decided while the arena directory is held empty")
		return nil, nil
	})
	if realize.KindOf(err) != realize.Busy {
		t.Fatalf("place into an empty-held arena: %v, want Busy", err)
	}
	if _, _, err := g.arena.Approve(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := g.arena.Place(t.Context(), "a/f000", func([]realize.Alternative) (*real.Change, error) { return nil, nil }); err != nil {
		t.Fatalf("place after approving: %v", err)
	}
}

// TestDeleteGuardHoldLifecycle: while an arena holds, edits are recorded
// and further deletions join the hold; restoring files shrinks it and
// restoring all ends it without recording anything.
func TestDeleteGuardHoldLifecycle(t *testing.T) {
	g := newGuardFixture(t, 50)
	g.write("keep", "k")
	g.files("d", 19)
	g.rm("d", 0, 15)
	g.scan()
	g.expect()
	g.write("new.txt", "new")
	g.write("keep", "edited")
	g.rm("d", 15, 16) // one more deletion: joins the hold
	g.scan()
	g.expect("replace keep", "add new.txt")
	if h := g.arena.Hold(); h == nil || h.Files != 16 {
		t.Fatalf("hold = %+v, want 16 files", h)
	}
	for i := range 10 { // some come back
		g.write(filepath.Join("d", fmt.Sprintf("f%03d", i)), fmt.Sprint(i))
	}
	g.scan()
	if n := g.removals(); n != 0 { // restored files are recorded as edits (new mtime)
		t.Fatalf("%d removals recorded while holding", n)
	}
	if h := g.arena.Hold(); h == nil || h.Files != 6 {
		t.Fatalf("hold = %+v, want 6 files", h)
	}
	for i := 10; i < 16; i++ { // all come back
		g.write(filepath.Join("d", fmt.Sprintf("f%03d", i)), fmt.Sprint(i))
	}
	g.scan()
	if n := g.removals(); n != 0 {
		t.Fatalf("%d removals recorded while holding", n)
	}
	if h := g.arena.Hold(); h != nil {
		t.Fatalf("hold = %+v after every file came back", h)
	}
	// The hold is over: a small deletion is recorded again.
	g.rm("d", 0, 1)
	g.scan()
	g.expect("remove d/f000")
}

// TestDeleteGuardApprove: approving records exactly what was held; a
// deletion made after the last scan stays held; approving with nothing
// held is an error.
func TestDeleteGuardApprove(t *testing.T) {
	g := newGuardFixture(t, 50)
	g.write("keep", "k")
	g.files("d", 19)
	g.rm("d", 0, 15)
	g.scan()
	g.expect()
	g.rm("d", 15, 16) // not scanned yet: not approved
	files, dirs, err := g.arena.Approve(t.Context())
	if err != nil || files != 15 || dirs != 0 {
		t.Fatalf("approve = %d files, %d dirs, %v; want 15, 0, nil", files, dirs, err)
	}
	if n := g.removals(); n != 15 {
		t.Fatalf("%d removals recorded, want 15", n)
	}
	if h := g.arena.Hold(); h == nil || h.Files != 1 {
		t.Fatalf("hold after approve = %+v, want the one later deletion", h)
	}
	if _, _, err := g.arena.Approve(t.Context()); err != nil {
		t.Fatal(err)
	}
	g.expect("remove d/f015")
	if h := g.arena.Hold(); h != nil {
		t.Fatalf("hold = %+v after approving everything", h)
	}
	if _, _, err := g.arena.Approve(t.Context()); realize.KindOf(err) != realize.NotExist {
		t.Fatalf("approve with nothing held: %v, want NotExist", err)
	}
	checkConsistent(t, g.fixture)
}

// TestDeleteGuardWindowAndRestart: deletions recorded within the window
// count with the next batch; a hold survives a restart even though the
// deletions left are under the share on their own; the window forgets.
func TestDeleteGuardWindowAndRestart(t *testing.T) {
	g := newGuardFixture(t, 50)
	g.write("keep", "k")
	g.files("d", 19)
	g.rm("d", 0, 8) // 8 of 20: recorded
	g.scan()
	if n := g.removals(); n != 8 {
		t.Fatalf("%d removals, want 8", n)
	}
	g.clock.add(10 * time.Second)
	g.rm("d", 8, 12) // 4 more: 12 of 20 within the window
	g.scan()
	g.expect()
	if h := g.arena.Hold(); h == nil || h.Files != 4 {
		t.Fatalf("hold = %+v, want 4 files", h)
	}
	g.reopen()
	if h := g.arena.Hold(); h == nil || h.Files != 4 {
		t.Fatalf("hold after restart, before a scan = %+v, want it loaded", h)
	}
	g.scan()
	g.expect()
	if h := g.arena.Hold(); h == nil || h.Files != 4 {
		t.Fatalf("hold after restart = %+v, want 4 files", h)
	}
	files, _, err := g.arena.Approve(t.Context())
	if err != nil || files != 4 {
		t.Fatalf("approve = %d, %v", files, err)
	}
	g.newEntries()
	// Later, beyond the window, 4 of the 8 left go through.
	g.clock.add(2 * time.Minute)
	g.rm("d", 12, 16)
	g.scan()
	if n := g.removals(); n != 4 {
		t.Fatalf("%d removals after the window, want 4", n)
	}
}

// TestDeleteGuardApproveAfterRestart: a hold loaded from the database is
// approved without a scan having run first.
func TestDeleteGuardApproveAfterRestart(t *testing.T) {
	g := newGuardFixture(t, 50)
	g.write("keep", "k")
	g.files("d", 19)
	g.rm("d", 0, 15)
	g.scan()
	g.reopen()
	files, _, err := g.arena.Approve(t.Context())
	if err != nil || files != 15 {
		t.Fatalf("approve = %d, %v; want 15", files, err)
	}
	if n := g.removals(); n != 15 {
		t.Fatalf("%d removals, want 15", n)
	}
}

// TestDeleteGuardMovesAreNotDeletions: moving most of an arena is a set
// of renames, never held.
func TestDeleteGuardMovesAreNotDeletions(t *testing.T) {
	g := newGuardFixture(t, 50)
	g.files("d", 20)
	if err := os.Rename(filepath.Join(g.root, "d"), filepath.Join(g.root, "e")); err != nil {
		t.Fatal(err)
	}
	g.scan()
	if h := g.arena.Hold(); h != nil {
		t.Fatalf("a move was held: %+v", h)
	}
	checkConsistent(t, g.fixture)
}

// TestDeleteGuardStatusOffline: the hold is stored, readable from the
// database alone (status while the daemon is down).
func TestDeleteGuardStatusOffline(t *testing.T) {
	g := newGuardFixture(t, 50)
	g.write("keep", "k")
	g.files("d", 19)
	g.rm("d", 0, 15)
	g.scan()
	var h *real.Hold
	err := g.db.View(func(tx *bolt.Tx) (err error) { h, err = real.ReadHold(tx, "test"); return err })
	if err != nil || h == nil || h.Files != 15 || h.SinceTime() != g.clock.Now() || h.Percent != 75 {
		t.Fatalf("stored hold = %+v, %v", h, err)
	}
}

// unrealize makes the files d/f<from..to> unreal (their bytes moved away,
// as unpin does).
func (g *guardFixture) unrealize(dir string, from, to int) {
	g.t.Helper()
	cache := g.t.TempDir()
	for i := from; i < to; i++ {
		p := realize.Path(fmt.Sprintf("%s/f%03d", dir, i))
		err := g.arena.Unrealize(g.t.Context(), p, func(*real.Record) error { return nil },
			func(abs string, rec *real.Record, _ realize.BlockMap) error {
				return os.Rename(abs, filepath.Join(cache, rec.Meta.Blob.String()))
			})
		if err != nil {
			g.t.Fatal(err)
		}
	}
	g.newEntries()
}

// TestDeleteGuardUnrealRemovals: unreal files removed through the mount
// one by one (rm -rf over NFS) count toward the share within the window;
// once it is crossed the rest are held — gone from the mount's point of
// view, kept in the index and across a restart — until approved.
func TestDeleteGuardUnrealRemovals(t *testing.T) {
	g := newGuardFixture(t, 50)
	g.files("d", 20)
	g.unrealize("d", 0, 15)
	for i := range 14 {
		if err := g.arena.RemoveUnreal(t.Context(), realize.Path(fmt.Sprintf("d/f%03d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if n := g.removals(); n != 10 { // the 11th of 20 crosses 50%
		t.Fatalf("%d removals recorded, want 10", n)
	}
	h := g.arena.Hold()
	if h == nil || h.Files != 4 || !g.arena.HeldDeletion("d/f013") || g.arena.HeldDeletion("d/f014") {
		t.Fatalf("hold = %+v", h)
	}
	if r := g.record("d/f013"); !r.IsUnreal() {
		t.Fatalf("held removal changed the record: %+v", r)
	}
	if has, _ := g.arena.HasUnrealUnder("d/f010"); has {
		t.Fatal("a held removal still counts as an unreal file under its path")
	}
	g.scan()
	g.expect()
	g.reopen()
	g.scan()
	g.expect()
	if h := g.arena.Hold(); h == nil || h.Files != 4 || !g.arena.HeldDeletion("d/f010") {
		t.Fatalf("after restart: hold = %+v", h)
	}
	// A file written where a held removal is: an edit, no longer held.
	g.write("d/f013", "written again")
	g.scan()
	g.expect("replace d/f013")
	if h := g.arena.Hold(); h == nil || h.Files != 3 || g.arena.HeldDeletion("d/f013") {
		t.Fatalf("after rewriting one: hold = %+v", h)
	}
	files, _, err := g.arena.Approve(t.Context())
	if err != nil || files != 3 {
		t.Fatalf("approve = %d, %v", files, err)
	}
	g.expect("remove d/f012", "remove d/f011", "remove d/f010")
	if h := g.arena.Hold(); h != nil || g.arena.HeldDeletion("d/f010") {
		t.Fatalf("after approve: hold = %+v", h)
	}
	g.reopen() // nothing of the hold is left behind
	g.scan()
	g.expect()
	if h := g.arena.Hold(); h != nil {
		t.Fatalf("after approve and restart: hold = %+v", h)
	}
	checkConsistent(t, g.fixture)
}

// TestDeleteGuardReject: refusing a held `rm -rf` puts directories and
// symlinks back on disk and turns the deleted real files unreal (their
// bytes are on other peers); a file no other peer holds stays held.
func TestDeleteGuardReject(t *testing.T) {
	g := newGuardFixture(t, 50)
	g.write("keep", "k")
	os.MkdirAll(filepath.Join(g.root, "d", "sub"), 0o755)
	os.Symlink("f001", filepath.Join(g.root, "d", "link"))
	g.files("d", 18)
	if err := os.RemoveAll(filepath.Join(g.root, "d")); err != nil {
		t.Fatal(err)
	}
	g.scan()
	g.expect()
	if h := g.arena.Hold(); h == nil || h.Files != 19 || h.Dirs != 2 {
		t.Fatalf("hold = %+v", h)
	}
	restored, kept, err := g.arena.Reject(t.Context(), func(r *real.Record) error {
		if r.Meta.Blob == g.record("d/f000").Meta.Blob {
			return errors.New("last copy")
		}
		return nil
	})
	if err != nil || restored != 20 || len(kept) != 1 || kept[0].Path != "d/f000" {
		t.Fatalf("reject = %d restored, kept %+v, %v", restored, kept, err)
	}
	got := g.newEntries()
	if len(got) != 17 || got[0] != "unrealize d/f001" {
		t.Fatalf("entries after reject: %q", got)
	}
	if r := g.record("d/f005"); !r.IsUnreal() {
		t.Fatalf("d/f005 after reject: %+v", r)
	}
	if target, err := os.Readlink(filepath.Join(g.root, "d", "link")); err != nil || target != "f001" {
		t.Fatalf("symlink not put back: %q %v", target, err)
	}
	if fi, err := os.Stat(filepath.Join(g.root, "d", "sub")); err != nil || !fi.IsDir() {
		t.Fatalf("directory not put back: %v", err)
	}
	if h := g.arena.Hold(); h == nil || h.Files != 1 || h.Dirs != 0 {
		t.Fatalf("hold after reject = %+v, want the one file with no other copy", h)
	}
	if _, _, err := g.arena.Approve(t.Context()); err != nil {
		t.Fatal(err)
	}
	g.expect("remove d/f000")
	if _, _, err := g.arena.Reject(t.Context(), nil); realize.KindOf(err) != realize.NotExist {
		t.Fatalf("reject with nothing held: %v", err)
	}
	checkConsistent(t, g.fixture)
}

// TestDeleteGuardSettle: with a settle time, a few deletions are recorded
// at once (they can never be held), while deletions that could add up to a
// hold wait and are judged together, whatever batch found them.
func TestDeleteGuardSettle(t *testing.T) {
	g := newGuardFixture(t, 50)
	g.settle = 2 * time.Second
	g.reopen()
	g.write("keep", "k")
	g.files("d", 19)
	batch := func() {
		t.Helper()
		if err := g.arena.ScanPaths(t.Context(), []realize.Path{"d", ""}, nil); err != nil {
			t.Fatal(err)
		}
	}
	g.rm("d", 0, 3) // fewer than GuardMinFiles: at once
	batch()
	g.expect("remove d/f002", "remove d/f001", "remove d/f000")
	g.clock.add(2 * time.Minute)

	g.rm("d", 3, 13) // 10 of 17: under the share alone, but it could add up
	batch()
	g.expect()
	if !g.arena.HeldDeletion("d/f003") || g.arena.Hold() != nil || g.arena.SettlingDeletes() != 10 {
		t.Fatalf("settling: held %v, hold %+v", g.arena.HeldDeletion("d/f003"), g.arena.Hold())
	}
	g.clock.add(time.Second)
	g.rm("d", 13, 16)       // 3 more before the first settled: they join
	g.write("new.txt", "n") // other changes do not wait
	batch()
	g.expect("add new.txt")
	if g.arena.SettleDue(g.clock.Now().Add(time.Second)) || !g.arena.SettleDue(g.clock.Now().Add(2*time.Second)) {
		t.Fatal("settle due at the wrong time")
	}
	if err := g.arena.Settle(t.Context()); err != nil {
		t.Fatal(err)
	}
	g.expect()
	if h := g.arena.Hold(); h == nil || h.Files != 13 || g.arena.SettlingDeletes() != 0 {
		t.Fatalf("after settling: hold = %+v, want the 13 deletions together", h)
	}
	if _, _, err := g.arena.Approve(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := g.removals(); n != 13 {
		t.Fatalf("%d removals, want 13", n)
	}
	checkConsistent(t, g.fixture)
}

// TestDeleteGuardSettleUnreal: unreal files removed through the mount
// settle too once they could add up to a hold; the removal is stored, so
// a restart before it settled loses nothing, and it is forgotten once
// recorded.
func TestDeleteGuardSettleUnreal(t *testing.T) {
	g := newGuardFixture(t, 50)
	g.settle = 2 * time.Second
	g.reopen()
	g.files("d", 20)
	g.unrealize("d", 0, 12)
	for i := range 10 {
		if err := g.arena.RemoveUnreal(t.Context(), realize.Path(fmt.Sprintf("d/f%03d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if n := g.removals(); n != 9 {
		t.Fatalf("%d removals recorded at once, want 9", n)
	}
	if !g.arena.HeldDeletion("d/f009") || g.arena.HeldDeletion("d/f008") {
		t.Fatal("the 10th removal through the mount is not shown gone while settling")
	}
	g.reopen() // a crash before it settled
	g.scan()   // found again (and, the recent ones forgotten, small: recorded)
	g.expect("remove d/f009")
	g.reopen()
	g.scan()
	g.expect()
	if g.arena.HeldDeletion("d/f009") || g.arena.HeldDeletion("d/f010") {
		t.Fatal("a recorded removal is still remembered")
	}
	g.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte("index")).Bucket([]byte("test")).Bucket([]byte("h")); b != nil && b.Stats().KeyN != 0 {
			t.Errorf("%d stored removals left after recording them", b.Stats().KeyN)
		}
		return nil
	})
	checkConsistent(t, g.fixture)
}

// TestDeleteGuardSettleIncidental: deletions a placement happens to see
// (it compares the directory of the path it places) always settle, even a
// few: the placement may have looked in the middle of an `rm -rf` that the
// watcher reports whole a moment later.
func TestDeleteGuardSettleIncidental(t *testing.T) {
	g := newGuardFixture(t, 50)
	g.settle = 2 * time.Second
	g.reopen()
	g.files("d", 20)
	g.rm("d", 0, 3)
	os.Remove(filepath.Join(g.root, "d", "f019")) // the path to place: gone too
	err := g.arena.Place(t.Context(), "d/f019", func([]realize.Alternative) (*real.Change, error) { return nil, nil })
	if err != nil {
		t.Fatal(err)
	}
	g.expect()
	if g.arena.SettlingDeletes() != 4 {
		t.Fatalf("%d deletions settling, want 4", g.arena.SettlingDeletes())
	}
	if err := g.arena.Settle(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := g.removals(); n != 4 {
		t.Fatalf("%d removals after settling, want 4", n)
	}
}
