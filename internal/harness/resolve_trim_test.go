package harness

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/consensus"
)

// pullFrom makes to store what from offers (without applying it) and
// tells from how far it has stored each log.
func pullFrom(t *testing.T, h *Household, to, from *Peer) {
	t.Helper()
	if _, err := to.repl.Pull(t.Context(), consensus.LocalSource{DB: from.DB, Log: from.Log, Arena: from.Arena}); err != nil {
		t.Fatal(err)
	}
	if err := h.ack(from, to); err != nil {
		t.Fatal(err)
	}
}

// convergeSides converges the linked peers, or fails.
func convergeSides(t *testing.T, h *Household) {
	t.Helper()
	if err := h.Converge(t.Context(), 20); err != nil {
		t.Fatal(err)
	}
}

// TestShownAgainIsNotKeptAside: a's version V loses to b's W (later
// mtime), and is kept aside on a and listed on a and c; then b, who never
// saw V, deletes W. V against that deletion wins (an edit beats a
// deletion): the path shows V again everywhere, V is no longer listed on
// any peer and its kept-aside bytes are freed; an edit on top of it later
// does not list it again.
func TestShownAgainIsNotKeptAside(t *testing.T) {
	h := New(t, 3)
	a, b, c := h.Peers[0], h.Peers[1], h.Peers[2]
	past := time.Now().Add(-time.Hour)
	write(t, a, "doc.txt", "base")
	converge(t, h)
	h.Partition([]int{0}, []int{1, 2})
	writeAt(t, a, "V", past)
	writeAt(t, b, "W", past.Add(time.Minute))
	convergeSides(t, h)
	h.Partition([]int{0, 2}, []int{1})
	convergeSides(t, h)
	for _, p := range []*Peer{a, c} {
		if l := listed(t, p, "doc.txt"); len(l) != 1 || l[0].Meta.Blob.Short() != hashShort("V") {
			t.Fatalf("peer %d lists %v: the test needs V kept aside", p.Index, l)
		}
	}
	os.Remove(filepath.Join(b.Root, "doc.txt"))
	convergeSides(t, h)
	h.Heal()
	converge(t, h)
	for _, p := range h.Peers {
		if got := read(t, p, "doc.txt"); got != "V" {
			t.Errorf("peer %d shows %q, want V (the edit beats the deletion)", p.Index, got)
		}
	}
	settled(t, h)
	write(t, b, "doc.txt", "X on top of V")
	converge(t, h)
	settled(t, h)
}

// TestKeepShownSurvivesConcurrentKeep: on one side of a partition a
// person keeps another version of a three-way conflict; on the other, b
// edits the file (an older mtime) and its user keeps what the path shows.
// The two meet: the resolution of a wins by the rule, and b's edit, which
// nobody chose against, must stay listed rather than be dropped by b's own
// resolution.
func TestKeepShownSurvivesConcurrentKeep(t *testing.T) {
	h := New(t, 3)
	conflictOf3(t, h)
	a, b := h.Peers[0], h.Peers[1]
	h.Partition([]int{0}, []int{1, 2})
	if _, err := a.Resolve(t.Context(), "doc.txt", consensus.Resolution{Keep: byContent(t, a, "doc.txt", "version of peer 0")}); err != nil {
		t.Fatal(err)
	}
	writeAt(t, b, "b's edit", time.Now().Add(-time.Hour))
	convergeSides(t, h)
	if _, err := b.Resolve(t.Context(), "doc.txt", consensus.Resolution{}); err != nil {
		t.Fatal(err)
	}
	convergeSides(t, h)
	h.Heal()
	converge(t, h)
	edit := hashShort("b's edit")
	for _, p := range h.Peers {
		at := hashShort(read(t, p, "doc.txt")) == edit
		kept := false
		for _, l := range listed(t, p, "doc.txt") {
			kept = kept || l.Meta.Blob.Short() == edit
		}
		if !at && !kept {
			t.Errorf("peer %d lost b's edit (shows %q)", p.Index, read(t, p, "doc.txt"))
		}
	}
}

// TestResolveAfterTombstoneTrimmed: a conflicted file is deleted and its
// tombstone trimmed away everywhere; the versions stay listed. Resolving
// then works: keeping what the path shows (nothing) only drops them,
// keeping one brings it back; either way every peer ends with nothing
// listed, no loser bytes and no tombstone.
func TestResolveAfterTombstoneTrimmed(t *testing.T) {
	for _, keep := range []string{"shown", "loser"} {
		t.Run(keep, func(t *testing.T) {
			h := New(t, 3)
			conflictOf3(t, h)
			a := h.Peers[0]
			os.Remove(filepath.Join(a.Root, "doc.txt"))
			converge(t, h)
			converge(t, h) // acks of the last pulls
			if err := h.Trim(t.Context()); err != nil {
				t.Fatal(err)
			}
			for _, p := range h.Peers {
				if r := records(t, p)["doc.txt"]; r != nil {
					t.Fatalf("peer %d kept the tombstone: the test needs it gone", p.Index)
				}
			}
			r := consensus.Resolution{}
			if keep == "loser" {
				r.Keep = byContent(t, a, "doc.txt", "version of peer 0")
			}
			if _, err := a.Resolve(t.Context(), "doc.txt", r); err != nil {
				t.Fatal(err)
			}
			converge(t, h)
			for _, p := range h.Peers {
				got := readFile(t, p, "doc.txt")
				if want := "version of peer 0"; keep == "loser" && got != want {
					t.Errorf("peer %d holds %q, want %q", p.Index, got, want)
				}
				if _, err := os.Stat(filepath.Join(p.Root, "doc.txt")); keep == "shown" && err == nil {
					t.Errorf("peer %d: doc.txt is back", p.Index)
				}
			}
			settled(t, h)
			checkTrimmed(t, h, false)
		})
	}
}

// TestNoZombieResolutionFromLaggingSnapshot is TestNoZombieFromLagging-
// Snapshot for a file whose version a resolution made (`resolve --keep`):
// its vector carries the resolution counter, so what c knows of each
// peer's log says nothing about it. c dropped the tombstone of its
// deletion; b's lagging snapshot still shows it: c must not take it back.
func TestNoZombieResolutionFromLaggingSnapshot(t *testing.T) {
	h := New(t, 3)
	a, b, c := h.Peers[0], h.Peers[1], h.Peers[2]
	for _, p := range h.Peers {
		p.Trimmer.InactiveAfter = month
	}
	conflictOf3(t, h)
	if _, err := a.Resolve(t.Context(), "doc.txt", consensus.Resolution{Keep: byContent(t, a, "doc.txt", "version of peer 0")}); err != nil {
		t.Fatal(err)
	}
	converge(t, h)
	converge(t, h)
	if r := records(t, c)["doc.txt"]; r == nil || r.Version[realize.ResolveCounter()] == 0 {
		t.Fatalf("c's record %+v: the test needs a resolution's version", r)
	}
	os.Remove(filepath.Join(a.Root, "doc.txt"))
	if err := a.Arena.ScanAll(t.Context()); err != nil {
		t.Fatal(err)
	}
	pullFrom(t, h, b, a) // b stores the deletion, does not apply it
	pullFrom(t, h, c, a)
	if _, err := c.repl.ApplyPending(t.Context()); err != nil {
		t.Fatal(err)
	}
	pullFrom(t, h, b, c)
	pullFrom(t, h, a, c)
	if _, err := c.Trimmer.Trim(t.Context()); err != nil {
		t.Fatal(err)
	}
	if r := records(t, c)["doc.txt"]; r != nil {
		t.Fatalf("c kept the tombstone: %+v", r)
	}
	h.Clock.Advance(month + 24*time.Hour)
	for _, f := range []string{"b1.txt", "b2.txt"} {
		write(t, b, f, f)
		if err := b.Arena.ScanAll(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	pullFrom(t, h, a, b)
	if _, err := b.Trimmer.Trim(t.Context()); err != nil {
		t.Fatal(err)
	}
	if r := records(t, b)["doc.txt"]; r == nil || r.Deleted {
		t.Fatal("b applied the deletion: the test needs b lagging")
	}
	pullFrom(t, h, c, b) // catch-up by snapshot: b still shows doc.txt
	if c.repl.CatchUps.Load() == 0 {
		t.Fatal("c did not catch up by snapshot")
	}
	if _, err := c.repl.ApplyPending(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(c.Root, "doc.txt")); err == nil {
		t.Fatal("doc.txt came back on c from b's lagging snapshot")
	}
	converge(t, h)
	for _, p := range h.Peers {
		if _, err := os.Stat(filepath.Join(p.Root, "doc.txt")); err == nil {
			t.Errorf("peer %d: doc.txt came back", p.Index)
		}
	}
}

// TestRenameOfVanishedBytesRemovesSource: while c is away a edits x.txt,
// renames it to y.txt and edits y.txt again, so the bytes of the renamed
// version are nowhere any more. Back, c applies a's log (before b's: logs
// are applied in the order of their authors' ids, and a's sorts first):
// the rename's destination can never be placed (and is superseded), but
// its source must still go — b's relayed removal of x.txt comes after and
// counts as decided already (history.Log.Known).
func TestRenameOfVanishedBytesRemovesSource(t *testing.T) {
	h := New(t, 3)
	a := h.Peers[1]
	if bytes.Compare(a.ID[:], h.Peers[0].ID[:]) > 0 {
		t.Fatal("the test needs a's log applied first")
	}
	write(t, a, "x.txt", "v1")
	converge(t, h)
	h.Partition([]int{0, 1}, []int{2})
	write(t, a, "x.txt", "v2")
	convergeSides(t, h)
	if err := os.Rename(filepath.Join(a.Root, "x.txt"), filepath.Join(a.Root, "y.txt")); err != nil {
		t.Fatal(err)
	}
	convergeSides(t, h)
	write(t, a, "y.txt", "v3")
	convergeSides(t, h)
	h.Heal()
	converge(t, h)
	for _, p := range h.Peers {
		if got := readFile(t, p, "y.txt"); got != "v3" {
			t.Errorf("peer %d: y.txt holds %q", p.Index, got)
		}
		if _, err := os.Stat(filepath.Join(p.Root, "x.txt")); err == nil {
			t.Errorf("peer %d: x.txt is still there", p.Index)
		}
	}
}

// TestCatchUpLearnsResolutions: a is away (inactive) while b resolves the
// conflict a lists and keeps bytes aside for; b and c trim the entries
// past a's copies. Back, a catches up by snapshot: the snapshot carries
// the resolution's drop, so a stops listing the versions and frees their
// bytes like everyone else.
func TestCatchUpLearnsResolutions(t *testing.T) {
	h := New(t, 3)
	a, b := h.Peers[0], h.Peers[1]
	for _, p := range h.Peers {
		p.Trimmer.InactiveAfter = month
	}
	conflictOf3(t, h)
	converge(t, h)
	h.Partition([]int{0}, []int{1, 2})
	if _, err := b.Resolve(t.Context(), "doc.txt", consensus.Resolution{}); err != nil {
		t.Fatal(err)
	}
	h.Clock.Advance(month + 24*time.Hour)
	for _, f := range []string{"later1.txt", "later2.txt", ""} {
		if f != "" {
			write(t, b, f, f)
		}
		convergeSides(t, h)
	}
	if err := h.Trim(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(listed(t, a, "doc.txt")) == 0 {
		t.Fatal("a lists nothing: the test needs it to list the versions")
	}
	h.Heal()
	converge(t, h)
	if a.repl.CatchUps.Load() == 0 {
		t.Fatal("a did not catch up by snapshot")
	}
	settled(t, h)
}
