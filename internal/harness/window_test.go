package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/realizefs/realize"
	bolt "go.etcd.io/bbolt"
)

// TestManyFilesThenStructuralChanges: hundreds of new files (applied many
// at once, their records committed in groups) followed in the same log by
// removals, a directory rename and rewrites (applied in order, each alone)
// converge; the receiver applies every entry and records nothing of its
// own making: no placed file is ever seen by its scanner as a local edit,
// even while it scans concurrently.
func TestManyFilesThenStructuralChanges(t *testing.T) {
	h := New(t, 2)
	a, b := h.Peers[0], h.Peers[1]
	for i := range 300 {
		write(t, a, fmt.Sprintf("d%d/f%03d", i%3, i), fmt.Sprintf("file %d", i))
	}
	if err := a.Arena.ScanAll(t.Context()); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 300; i += 3 {
		if err := os.Remove(filepath.Join(a.Root, fmt.Sprintf("d0/f%03d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(filepath.Join(a.Root, "d1"), filepath.Join(a.Root, "moved")); err != nil {
		t.Fatal(err)
	}
	for i := 2; i < 300; i += 30 {
		write(t, a, fmt.Sprintf("d2/f%03d", i), fmt.Sprintf("file %d, second version", i))
	}
	// b scans its own tree over and over while it applies.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := b.Arena.ScanAll(t.Context()); err != nil {
				t.Error(err)
				return
			}
		}
	})
	err := h.Converge(t.Context(), 20)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Converged(); err != nil {
		t.Fatal(err)
	}
	err = b.DB.View(func(tx *bolt.Tx) error {
		head, err := a.Log.Head(tx, Arena, a.ID)
		if err != nil {
			return err
		}
		if applied := b.Log.Applied(tx, Arena, a.ID); applied != head.Seq {
			t.Errorf("b applied a's log up to %d of %d", applied, head.Seq)
		}
		return b.Log.Scan(tx, Arena, b.ID, 0, func(e *realize.Entry, _ realize.Hash) error {
			if e.Origin != a.ID {
				t.Errorf("b recorded %s %s as its own change", e.Op, e.Path)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}
