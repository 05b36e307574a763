package harness

// Regression tests for bugs found in review: each reproduced the failure
// before its fix.

import (
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/consensus"
	"github.com/realizefs/realize/real"
	"github.com/zeebo/blake3"
	bolt "go.etcd.io/bbolt"
)

// R4: rename detection trusts (dev, inode, size, mtime) and ignores that
// the content changed in place with mtime kept.
func TestRegressionRenameStaleBlob(t *testing.T) {
	h := New(t, 2)
	a := h.Peers[0]
	write(t, a, "f.txt", "aaaa")
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	os.Chtimes(filepath.Join(a.Root, "f.txt"), old, old)
	converge(t, h)
	// Same inode, same size, mtime restored (rsync -t, cp -p, touch -r, tar x ...).
	if err := os.WriteFile(filepath.Join(a.Root, "f.txt"), []byte("bbbb"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(filepath.Join(a.Root, "f.txt"), old, old)
	os.Rename(filepath.Join(a.Root, "f.txt"), filepath.Join(a.Root, "g.txt"))
	if err := h.Converge(t.Context(), 20); err != nil {
		t.Logf("converge: %v", err)
	}
	// A full rescan later still does not notice.
	a.Arena.ScanAll(t.Context())
	h.Converge(t.Context(), 20)
	a.DB.View(func(tx *bolt.Tx) error {
		ix, _ := real.OpenIndex(tx, Arena)
		r, _ := ix.Get("g.txt")
		t.Logf("a index g.txt blob=%s; content hash on disk=%s (aaaa=%s)", r.Meta.Blob.Short(), hashShort("bbbb"), hashShort("aaaa"))
		return nil
	})
	if err := h.Converged(); err != nil {
		t.Errorf("%v", err)
	}
}

func TestRegressionReadBlocksOverflow(t *testing.T) {
	h := New(t, 1)
	a := h.Peers[0]
	write(t, a, "f", "hello")
	h.Scan(t.Context())
	defer func() {
		if p := recover(); p != nil {
			t.Errorf("panic: %v", p)
		}
	}()
	err := a.Arena.ReadBlocks(t.Context(), realize.Hash(blake3.Sum256([]byte("hello"))), math.MaxInt-10, 64, func(int, []byte) error { return nil })
	t.Log(err)
}

func rec(t *testing.T, p *Peer, path string) *real.Record {
	var r *real.Record
	p.DB.View(func(tx *bolt.Tx) error {
		ix, _ := real.OpenIndex(tx, Arena)
		r, _ = ix.Get("doc.txt")
		return nil
	})
	return r
}

func writeAt(t *testing.T, p *Peer, content string, mt time.Time) {
	write(t, p, "doc.txt", content)
	os.Chtimes(filepath.Join(p.Root, "doc.txt"), mt, mt)
}

func TestRegressionFrontierErased(t *testing.T) {
	h := New(t, 3)
	a, b, c := h.Peers[0], h.Peers[1], h.Peers[2]
	base := time.Now()
	write(t, a, "doc.txt", "base")
	converge(t, h)
	h.Partition([]int{0, 2}, []int{1})
	writeAt(t, a, "W", base.Add(20*time.Second)) // future mtime: within racy window? use now-ish
	writeAt(t, b, "L", base.Add(10*time.Second))
	if err := h.Converge(t.Context(), 20); err != nil {
		t.Fatal(err)
	}
	h.Partition([]int{0, 1}, []int{2})
	writeAt(t, c, "V", base.Add(5*time.Second))
	if err := h.Converge(t.Context(), 20); err != nil {
		t.Fatal(err)
	}
	ra := rec(t, a, "doc.txt")
	t.Logf("a before rescan: own=%v others=%d stat.ctime=%d", ra.Own, len(ra.Others), ra.Stat.CTime)
	a.Arena.ScanAll(t.Context())
	ra = rec(t, a, "doc.txt")
	t.Logf("a after rescan: own=%v others=%d", ra.Own, len(ra.Others))
	if len(ra.Others) == 0 {
		t.Errorf("rescan erased the conflict frontier")
	}
	h.Heal()
	err := h.Converge(t.Context(), 20)
	t.Logf("converge: %v / converged: %v", err, h.Converged())
	for _, p := range h.Peers {
		tr, _ := TreeOf(p)
		cs, _ := Conflicts(p)
		t.Logf("peer %d: %v conflicts %v", p.Index, tr["doc.txt"], cs)
	}
	t.Logf("W=%s L=%s V=%s", hashShort("W"), hashShort("L"), hashShort("V"))
}

func TestRegressionCatchUpSkipsForever(t *testing.T) {
	h := New(t, 2)
	a, b := h.Peers[0], h.Peers[1]
	write(t, a, "keep.txt", "v1-----")
	converge(t, h)
	h.Partition([]int{0}, []int{1})
	write(t, a, "keep.txt", "v2-----")
	write(t, a, "zz.txt", "later")
	if err := h.Converge(t.Context(), 20); err != nil {
		t.Fatal(err)
	}
	a.DB.Update(func(tx *bolt.Tx) error {
		head, _ := a.Log.Head(tx, Arena, a.ID)
		_, err := a.Log.DropBefore(tx, Arena, a.ID, head.Seq)
		return err
	})
	h.Heal()
	// A transient failure to read the bytes at catch-up time (file being
	// rewritten on a, a dropped stream ...).
	fi, _ := os.Stat(filepath.Join(a.Root, "keep.txt"))
	os.WriteFile(filepath.Join(a.Root, "keep.txt"), []byte("mid-edit"), 0o644)
	n, err := b.repl.Pull(t.Context(), consensus.LocalSource{DB: a.DB, Log: a.Log, Arena: a.Arena})
	t.Logf("pull: %d %v catchups=%d", n, err, b.repl.CatchUps.Load())
	os.WriteFile(filepath.Join(a.Root, "keep.txt"), []byte("v2-----"), 0o644) // back as recorded
	os.Chtimes(filepath.Join(a.Root, "keep.txt"), fi.ModTime(), fi.ModTime())
	if err := h.Converge(t.Context(), 20); err != nil {
		t.Logf("converge: %v", err)
	}
	got, _ := os.ReadFile(filepath.Join(b.Root, "keep.txt"))
	t.Logf("b keep.txt = %q", got)
	if err := h.Converged(); err != nil {
		t.Errorf("%v", err)
	}
}

// R1: the conflict loser kept aside cannot be served to other peers.
func TestRegressionLoserUnservable(t *testing.T) {
	h := New(t, 2)
	a, b := h.Peers[0], h.Peers[1]
	write(t, a, "doc.txt", "base")
	converge(t, h)
	h.Partition([]int{0}, []int{1})
	write(t, a, "doc.txt", "a's version")
	old := time.Now().Add(-time.Hour)
	os.Chtimes(filepath.Join(a.Root, "doc.txt"), old, old) // a loses (older mtime)
	write(t, b, "doc.txt", "b's version")
	if err := h.Converge(t.Context(), 20); err != nil {
		t.Fatal(err)
	}
	h.Heal()
	converge(t, h)
	blob := realize.Hash(blake3.Sum256([]byte("a's version")))
	if _, ok := a.Arena.ConflictBytes(blob); !ok {
		t.Fatal("loser not kept on a")
	}
	bm, err := a.Arena.BlockMap(blob)
	t.Logf("a.BlockMap(loser) = %v, %v", bm, err)
	err = a.Arena.ReadBlocks(t.Context(), blob, 0, 1, func(int, []byte) error { return nil })
	t.Logf("a.ReadBlocks(loser) err = %v", err)
	if err != nil || len(bm) == 0 {
		t.Errorf("loser held only by a cannot be served")
	}
}

// R2: rmdir vs concurrent creation of a child wedges the log.
func TestRegressionRmdirVsNewChild(t *testing.T) {
	h := New(t, 2)
	a, b := h.Peers[0], h.Peers[1]
	write(t, a, "d/x", "x")
	converge(t, h)
	h.Partition([]int{0}, []int{1})
	os.RemoveAll(filepath.Join(a.Root, "d"))
	write(t, b, "d/y", "new on b")
	if err := h.Converge(t.Context(), 20); err != nil {
		t.Fatal(err)
	}
	h.Heal()
	err := h.Converge(t.Context(), 20)
	t.Logf("converge after heal: %v", err)
	write(t, a, "later.txt", "later")
	err2 := h.Converge(t.Context(), 20)
	t.Logf("converge again: %v", err2)
	if _, e := os.Stat(filepath.Join(b.Root, "later.txt")); e != nil {
		t.Errorf("b never receives a's later change: %v", e)
	}
}

// R3: a path ignored on the receiver wedges the author's log.
func TestRegressionIgnoredPathWedges(t *testing.T) {
	h := New(t, 2)
	a, b := h.Peers[0], h.Peers[1]
	h.Partition([]int{0}, []int{1})
	write(t, a, ".realizeignore", "*.log\n")
	write(t, b, "x.log", "log")
	if err := h.Converge(t.Context(), 20); err != nil {
		t.Fatal(err)
	}
	h.Heal()
	err := h.Converge(t.Context(), 20)
	t.Logf("converge after heal: %v", err)
	write(t, b, "later.txt", "later")
	err = h.Converge(t.Context(), 20)
	t.Logf("converge again: %v", err)
	if _, e := os.Stat(filepath.Join(a.Root, "later.txt")); e != nil {
		t.Errorf("a never receives b's later change: %v", e)
	}
}

// An entry whose bytes no reachable peer has, and that nothing newer
// supersedes, waits: its log stops there. It was skipped instead (the
// stop was an errors.Join of two nil errors, which is nil), the cursor
// moved past it, and the file never came, even once its bytes were back.
func TestRegressionUnavailableEntryWaits(t *testing.T) {
	h := New(t, 2)
	a, b := h.Peers[0], h.Peers[1]
	write(t, a, "x.txt", "needs its bytes")
	write(t, a, "y.txt", "after x")
	if err := h.Scan(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := b.repl.Pull(t.Context(), consensus.LocalSource{DB: a.DB, Log: a.Log, Arena: a.Arena}); err != nil {
		t.Fatal(err)
	}
	h.Partition([]int{0}, []int{1}) // B has the entries, no peer has the bytes
	if _, err := b.repl.ApplyPending(t.Context()); realize.KindOf(err) != realize.Unavailable {
		t.Fatalf("applying without the bytes: want an Unavailable error (the log waits), got %v", err)
	}
	h.Heal()
	converge(t, h)
	if got, err := os.ReadFile(filepath.Join(b.Root, "x.txt")); err != nil || string(got) != "needs its bytes" {
		t.Fatalf("x.txt on B once its bytes are reachable: %q %v", got, err)
	}
}
