package harness

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/consensus"
	"github.com/realizefs/realize/unreal/listing"
	"github.com/zeebo/blake3"
	bolt "go.etcd.io/bbolt"
)

const month = 30 * 24 * time.Hour

func readFile(t *testing.T, p *Peer, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(p.Root, rel))
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(b)
}

// retained returns the first entry p still keeps of author's log.
func retained(t *testing.T, p *Peer, author realize.PeerID) (first, head uint64) {
	t.Helper()
	err := p.DB.View(func(tx *bolt.Tx) (err error) {
		first, head, err = p.Log.Retained(tx, Arena, author)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return first, head
}

// TestInactivePeerCatchesUpAfterTrim: c is offline longer than
// inactive_after while a and b go on and trim their histories past c's
// cursor. Back, c catches up by snapshot: it gets a's edits, does not
// bring back what a deleted, and its own offline work reaches everyone —
// including an edit of a file a deleted meanwhile (the edit wins).
func TestInactivePeerCatchesUpAfterTrim(t *testing.T) {
	h := New(t, 3)
	a, b, c := h.Peers[0], h.Peers[1], h.Peers[2]
	for _, p := range h.Peers {
		p.Trimmer.InactiveAfter = month
	}
	write(t, a, "keep.txt", "v1")
	write(t, a, "gone.txt", "deleted while c is away")
	write(t, a, "contested.txt", "base")
	write(t, a, "both.txt", "base")
	write(t, c, "mine.txt", "c's file")
	converge(t, h)
	converge(t, h) // acks of the last pulls

	h.Partition([]int{0, 1}, []int{2})
	h.Clock.Advance(month + 24*time.Hour)
	write(t, a, "keep.txt", "v2")
	os.Remove(filepath.Join(a.Root, "gone.txt"))
	os.Remove(filepath.Join(a.Root, "contested.txt"))
	write(t, a, "new.txt", "made while c is away")
	write(t, c, "mine.txt", "c's offline edit")
	write(t, c, "contested.txt", "c's offline edit of a file a deleted")
	write(t, c, "c-new.txt", "made offline")
	write(t, a, "both.txt", "a's edit")
	write(t, c, "both.txt", "c's concurrent edit")
	for range 2 {
		if err := h.Converge(t.Context(), 20); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := a.Trimmer.Trim(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(rep.Inactive, c.ID) || slices.Contains(rep.Inactive, b.ID) {
		t.Fatalf("a sees inactive %v, want c only", rep.Inactive)
	}
	if err := h.Trim(t.Context()); err != nil {
		t.Fatal(err)
	}
	var cHas uint64
	c.DB.View(func(tx *bolt.Tx) error { h, _ := c.Log.Head(tx, Arena, a.ID); cHas = h.Seq; return nil })
	if first, _ := retained(t, a, a.ID); first <= cHas+1 {
		t.Fatalf("a keeps its log from %d; c has up to %d: its cursor was not trimmed away", first, cHas)
	}
	// c saw no one for a month either, but nobody has its offline work:
	// it keeps it.
	if first, head := retained(t, c, c.ID); head+1-first < 3 {
		t.Fatalf("c trimmed its unacknowledged offline entries (%d-%d)", first, head)
	}
	if recs := records(t, a); recs["gone.txt"] == nil || !recs["gone.txt"].Deleted {
		t.Fatal("a dropped the tombstone of gone.txt although c never acknowledged the deletion")
	}

	h.Heal()
	converge(t, h)
	if c.repl.CatchUps.Load() == 0 {
		t.Error("c did not catch up by snapshot")
	}
	for _, p := range h.Peers {
		want := map[string]string{
			"keep.txt": "v2", "new.txt": "made while c is away", "mine.txt": "c's offline edit",
			"c-new.txt": "made offline", "contested.txt": "c's offline edit of a file a deleted",
		}
		for f, w := range want {
			if got := readFile(t, p, f); got != w {
				t.Errorf("peer %d: %s = %q, want %q", p.Index, f, got, w)
			}
		}
		if _, err := os.Stat(filepath.Join(p.Root, "gone.txt")); err == nil {
			t.Errorf("peer %d: gone.txt came back", p.Index)
		}
		// Concurrent edits: one at the path, the other kept as a conflict.
		shown := readFile(t, p, "both.txt")
		other := map[string]string{"a's edit": "c's concurrent edit", "c's concurrent edit": "a's edit"}[shown]
		cs, _ := Conflicts(p)
		if other == "" || !slices.Contains(cs, "both.txt "+hashShort(other)) {
			t.Errorf("peer %d: both.txt = %q, conflicts %v: a version is lost", p.Index, shown, cs)
		}
	}
	checkTrimmed(t, h, true)
}

// TestNoZombieFromLaggingSnapshot: c has applied a deletion and dropped
// its tombstone (everyone had stored the deletion). b had stored it but
// not applied it yet when c catches up from b by snapshot: b's snapshot
// still shows the file, in a version c decided long ago. c must not take
// it back (history.Log.Known).
func TestNoZombieFromLaggingSnapshot(t *testing.T) {
	h := New(t, 3)
	a, b, c := h.Peers[0], h.Peers[1], h.Peers[2]
	for _, p := range h.Peers {
		p.Trimmer.InactiveAfter = month
	}
	write(t, a, "x.txt", "soon deleted")
	converge(t, h)
	converge(t, h)

	os.Remove(filepath.Join(a.Root, "x.txt"))
	if err := a.Arena.ScanAll(t.Context()); err != nil {
		t.Fatal(err)
	}
	pull := func(to, from *Peer) {
		t.Helper()
		if _, err := to.repl.Pull(t.Context(), consensus.LocalSource{DB: from.DB, Log: from.Log, Arena: from.Arena}); err != nil {
			t.Fatal(err)
		}
		if err := h.ack(from, to); err != nil {
			t.Fatal(err)
		}
	}
	pull(b, a) // b stores the deletion, does not apply it
	pull(c, a)
	if _, err := c.repl.ApplyPending(t.Context()); err != nil {
		t.Fatal(err)
	}
	pull(b, c) // b tells c it has a's log up to the deletion
	pull(a, c)
	if _, err := c.Trimmer.Trim(t.Context()); err != nil {
		t.Fatal(err)
	}
	if r := records(t, c)["x.txt"]; r != nil {
		t.Fatalf("c kept the tombstone: %+v", r)
	}
	// c is away for a month; b writes on and trims its log past c's copy.
	h.Clock.Advance(month + 24*time.Hour)
	write(t, b, "b1.txt", "1")
	if err := b.Arena.ScanAll(t.Context()); err != nil {
		t.Fatal(err)
	}
	write(t, b, "b2.txt", "2")
	if err := b.Arena.ScanAll(t.Context()); err != nil {
		t.Fatal(err)
	}
	pull(a, b)
	if _, err := b.Trimmer.Trim(t.Context()); err != nil {
		t.Fatal(err)
	}
	if r := records(t, b)["x.txt"]; r == nil || r.Deleted {
		t.Fatal("b applied the deletion: the test needs b lagging")
	}
	pull(c, b) // catch-up by snapshot: b still shows x.txt
	if c.repl.CatchUps.Load() == 0 {
		t.Fatal("c did not catch up by snapshot")
	}
	if _, err := c.repl.ApplyPending(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(c.Root, "x.txt")); err == nil {
		t.Fatal("x.txt came back on c from b's lagging snapshot")
	}
	converge(t, h)
	for _, p := range h.Peers {
		if _, err := os.Stat(filepath.Join(p.Root, "x.txt")); err == nil {
			t.Errorf("peer %d: x.txt came back", p.Index)
		}
	}
}

// TestCatchUpReplacesHolders: what b knew of the files a holds came from
// a's log. When b catches up on that log by snapshot, what a's snapshot
// says a holds replaces it: a file a deleted meanwhile (in entries b never
// got) is no longer counted as a copy on a, one a still has still is.
func TestCatchUpReplacesHolders(t *testing.T) {
	h := New(t, 2)
	a, b := h.Peers[0], h.Peers[1]
	write(t, a, "keep.txt", "kept on a")
	write(t, a, "gone.txt", "deleted on a")
	converge(t, h)
	keep, gone := realize.Hash(blake3.Sum256([]byte("kept on a"))), realize.Hash(blake3.Sum256([]byte("deleted on a")))
	holders := func(blob realize.Hash) []realize.PeerID {
		var out []realize.PeerID
		b.DB.View(func(tx *bolt.Tx) error { out = listing.Holders(tx, blob, b.ID); return nil })
		return out
	}
	if !slices.Contains(holders(gone), a.ID) {
		t.Fatal("b does not know a holds gone.txt to begin with")
	}
	h.Partition([]int{0}, []int{1})
	os.Remove(filepath.Join(a.Root, "gone.txt"))
	write(t, a, "later.txt", "later")
	if err := h.Converge(t.Context(), 20); err != nil {
		t.Fatal(err)
	}
	a.DB.Update(func(tx *bolt.Tx) error {
		head, _ := a.Log.Head(tx, Arena, a.ID)
		_, err := a.Log.DropBefore(tx, Arena, a.ID, head.Seq)
		return err
	})
	h.Heal()
	converge(t, h)
	if b.repl.CatchUps.Load() == 0 {
		t.Fatal("b did not catch up by snapshot")
	}
	if slices.Contains(holders(gone), a.ID) {
		t.Error("b still counts a's deleted copy of gone.txt")
	}
	if !slices.Contains(holders(keep), a.ID) {
		t.Error("b forgot that a holds keep.txt")
	}
}

// TestCatchUpAppliesStoredEntriesFirst: b stored a's deletion of x but
// could not apply it yet (an earlier entry waits for bytes) when it went
// silent; a and c, having everyone's word that
// they stored the deletion, dropped their tombstones and trimmed past b's
// copies. When b catches up by snapshot (which no longer shows x), the
// deletion it stored must still be applied, not thrown away with its copy
// of the log.
func TestCatchUpAppliesStoredEntriesFirst(t *testing.T) {
	h := New(t, 3)
	a, b := h.Peers[0], h.Peers[1] // and c, which stays in touch with a
	for _, p := range h.Peers {
		p.Trimmer.InactiveAfter = month
	}
	write(t, a, "x.txt", "soon deleted")
	converge(t, h)
	converge(t, h)
	h.Partition([]int{0, 2}, []int{1})
	write(t, a, "0.txt", "its bytes are out of b's reach")
	if err := h.Converge(t.Context(), 20); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(a.Root, "x.txt"))
	if err := h.Converge(t.Context(), 20); err != nil {
		t.Fatal(err)
	}
	// b stores the deletion, in a's log and in c's, and tells both; it
	// cannot apply it: 0.txt comes first, and no peer b reaches has it.
	for _, src := range []*Peer{a, h.Peers[2]} {
		if _, err := b.repl.Pull(t.Context(), consensus.LocalSource{DB: src.DB, Log: src.Log, Arena: src.Arena}); err != nil {
			t.Fatal(err)
		}
		if err := h.ack(src, b); err != nil {
			t.Fatal(err)
		}
	}
	h.Clock.Advance(month + 24*time.Hour)
	for _, f := range []string{"later1.txt", "later2.txt", ""} {
		if f != "" {
			write(t, a, f, f)
		}
		if err := h.Converge(t.Context(), 20); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Trim(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*Peer{a, h.Peers[2]} {
		if r := records(t, p)["x.txt"]; r != nil {
			t.Fatalf("peer %d kept the tombstone: %+v", p.Index, r)
		}
	}
	if r := records(t, b)["x.txt"]; r == nil || r.Deleted {
		t.Fatal("b applied the deletion: the test needs it waiting")
	}
	var bHas uint64
	b.DB.View(func(tx *bolt.Tx) error { h, _ := b.Log.Head(tx, Arena, a.ID); bHas = h.Seq; return nil })
	if first, _ := retained(t, a, a.ID); first <= bHas+1 {
		t.Fatalf("a keeps its log from %d, b has up to %d: no catch-up would happen", first, bHas)
	}
	h.Heal()
	converge(t, h)
	if b.repl.CatchUps.Load() == 0 {
		t.Fatal("b did not catch up by snapshot")
	}
	if _, err := os.Stat(filepath.Join(b.Root, "x.txt")); err == nil {
		t.Error("x.txt is back on b: the deletion b had stored was lost at catch-up")
	}
}
