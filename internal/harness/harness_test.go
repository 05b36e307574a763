package harness

import (
	bolt "go.etcd.io/bbolt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, p *Peer, rel, content string) {
	t.Helper()
	path := filepath.Join(p.Root, rel)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func converge(t *testing.T, h *Household) {
	t.Helper()
	if err := h.Converge(t.Context(), 20); err != nil {
		t.Fatal(err)
	}
	if err := h.Converged(); err != nil {
		t.Fatal(err)
	}
}

func TestThreePeersReplicate(t *testing.T) {
	h := New(t, 3)
	a, b, c := h.Peers[0], h.Peers[1], h.Peers[2]
	write(t, a, "docs/readme.txt", "hello")
	os.MkdirAll(filepath.Join(a.Root, "empty/dir"), 0o755)
	os.Symlink("docs/readme.txt", filepath.Join(a.Root, "link"))
	write(t, a, "bin/tool", "#!/bin/sh\n")
	os.Chmod(filepath.Join(a.Root, "bin/tool"), 0o755)
	converge(t, h)
	tree, _ := TreeOf(c)
	if tree["empty/dir"] != "dir" || tree["link"] != "symlink -> docs/readme.txt" || !strings.HasSuffix(tree["bin/tool"], " x") {
		t.Fatalf("tree on c: %v", tree)
	}
	// mtime propagates.
	ia, _ := os.Stat(filepath.Join(a.Root, "docs/readme.txt"))
	ic, _ := os.Stat(filepath.Join(c.Root, "docs/readme.txt"))
	if !ia.ModTime().Equal(ic.ModTime()) {
		t.Errorf("mtime %v on a, %v on c", ia.ModTime(), ic.ModTime())
	}

	// An edit on b, a rename on c, a delete on a: all propagate.
	write(t, b, "docs/readme.txt", "hello, edited")
	converge(t, h)
	before := a.Fetched() + b.Fetched()
	if err := os.Rename(filepath.Join(c.Root, "docs"), filepath.Join(c.Root, "papers")); err != nil {
		t.Fatal(err)
	}
	converge(t, h)
	if after := a.Fetched() + b.Fetched(); after != before {
		t.Errorf("a rename moved %d bytes between peers", after-before)
	}
	os.Remove(filepath.Join(a.Root, "papers/readme.txt"))
	converge(t, h)
	tree, _ = TreeOf(b)
	if _, ok := tree["papers/readme.txt"]; ok {
		t.Fatalf("delete did not propagate: %v", tree)
	}
}

func TestRelayThroughMiddlePeer(t *testing.T) {
	h := New(t, 3)
	// a and c never meet; b carries a's log to c, verified with a's key.
	h.Partition([]int{0, 1}, []int{1, 2})
	h.linked[1][2], h.linked[2][1] = true, true
	h.linked[0][2], h.linked[2][0] = false, false
	write(t, h.Peers[0], "from-a.txt", "relayed")
	converge(t, h)
	got, err := os.ReadFile(filepath.Join(h.Peers[2].Root, "from-a.txt"))
	if err != nil || string(got) != "relayed" {
		t.Fatalf("on c: %q, %v", got, err)
	}
}

func TestConcurrentEditsKeepBothVersions(t *testing.T) {
	h := New(t, 3)
	a, b := h.Peers[0], h.Peers[1]
	write(t, a, "doc.txt", "base")
	converge(t, h)
	h.Partition([]int{0}, []int{1, 2})
	write(t, a, "doc.txt", "a's version")
	write(t, b, "doc.txt", "b's version")
	if err := h.Converge(t.Context(), 20); err != nil { // within each side only
		t.Fatal(err)
	}
	h.Heal()
	converge(t, h)
	tree, _ := TreeOf(a)
	for _, p := range h.Peers {
		cs, err := Conflicts(p)
		if err != nil || len(cs) != 1 || !strings.HasPrefix(cs[0], "doc.txt ") {
			t.Fatalf("peer %d conflicts: %v %v", p.Index, cs, err)
		}
	}
	// The loser's bytes survive on the peer that made it.
	winner := tree["doc.txt"]
	loserPeer := a
	if winner == "file "+hashShort("a's version") {
		loserPeer = b
	}
	kept := false
	ents, _ := os.ReadDir(filepath.Join(loserPeer.Root, ".realize-conflicts"))
	kept = len(ents) == 1
	if !kept {
		t.Fatalf("loser's bytes not kept on peer %d", loserPeer.Index)
	}
}

func TestDeleteVersusEditKeepsEdit(t *testing.T) {
	h := New(t, 2)
	a, b := h.Peers[0], h.Peers[1]
	write(t, a, "doc.txt", "base")
	converge(t, h)
	h.Partition([]int{0}, []int{1})
	os.Remove(filepath.Join(a.Root, "doc.txt"))
	write(t, b, "doc.txt", "edited while a deleted it")
	if err := h.Converge(t.Context(), 20); err != nil {
		t.Fatal(err)
	}
	h.Heal()
	converge(t, h)
	for _, p := range h.Peers {
		got, err := os.ReadFile(filepath.Join(p.Root, "doc.txt"))
		if err != nil || string(got) != "edited while a deleted it" {
			t.Fatalf("peer %d: %q %v", p.Index, got, err)
		}
	}
}

// TestSmallEditOfLargeFileMovesLittle: B already has the previous version
// of a large file; after a 1 MiB edit in its middle on A, B copies the
// unchanged blocks from its own copy and fetches only the blocks around the
// edit.
func TestSmallEditOfLargeFileMovesLittle(t *testing.T) {
	h := New(t, 2)
	a, b := h.Peers[0], h.Peers[1]
	data := make([]byte, 24<<20)
	for i := range data {
		data[i] = byte(i*7919 + i/4099)
	}
	writeBytes(t, a, "big.bin", data)
	converge(t, h)
	before := b.Fetched()
	edit := make([]byte, 1<<20)
	for i := range edit {
		edit[i] = byte(i * 31)
	}
	copy(data[11<<20:], edit)
	writeBytes(t, a, "big.bin", data)
	converge(t, h)
	moved := b.Fetched() - before
	t.Logf("a 1 MiB edit in a 24 MiB file moved %.2f MiB", float64(moved)/(1<<20))
	if moved > 4<<20 || moved < 1<<20 {
		t.Fatalf("moved %d bytes for a 1 MiB edit", moved)
	}
}

func writeBytes(t *testing.T, p *Peer, rel string, b []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(p.Root, rel), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCatchUpBySnapshotAfterTrim: peers whose cursor was trimmed away (an
// old peer back after a long absence, and a brand-new one) catch up from a
// snapshot, keep their own offline edits, and do not resurrect files
// deleted while they were away.
func TestCatchUpBySnapshotAfterTrim(t *testing.T) {
	h := New(t, 3)
	a, b, c := h.Peers[0], h.Peers[1], h.Peers[2]
	h.Partition([]int{0, 1}, []int{2}) // c is away from the start
	write(t, a, "keep.txt", "v1")
	write(t, a, "gone.txt", "to be deleted")
	if err := h.Converge(t.Context(), 20); err != nil {
		t.Fatal(err)
	}
	h.Partition([]int{0}, []int{1}, []int{2}) // b leaves too
	write(t, b, "b-offline.txt", "made while away")
	write(t, a, "keep.txt", "v2")
	os.Remove(filepath.Join(a.Root, "gone.txt"))
	write(t, a, "new.txt", "after b left")
	if err := h.Converge(t.Context(), 20); err != nil {
		t.Fatal(err)
	}
	// a trims its whole log: b's cursor (and c's) are gone.
	if err := a.DB.Update(func(tx *bolt.Tx) error {
		head, err := a.Log.Head(tx, Arena, a.ID)
		if err == nil {
			_, err = a.Log.DropBefore(tx, Arena, a.ID, head.Seq)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	h.Partition([]int{0, 1, 2})
	converge(t, h)
	for _, p := range []*Peer{b, c} {
		if p.repl.CatchUps.Load() == 0 {
			t.Errorf("peer %d never caught up by snapshot", p.Index)
		}
		got, _ := os.ReadFile(filepath.Join(p.Root, "keep.txt"))
		if string(got) != "v2" {
			t.Errorf("peer %d keep.txt = %q", p.Index, got)
		}
		if _, err := os.Stat(filepath.Join(p.Root, "gone.txt")); err == nil {
			t.Errorf("peer %d: a file deleted while it was away came back", p.Index)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(a.Root, "b-offline.txt")); string(got) != "made while away" {
		t.Errorf("b's offline edit did not reach a: %q", got)
	}
}
