package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/realizefs/realize"
	bolt "go.etcd.io/bbolt"
)

// bbolt never gives pages back to the file system: pages freed by deletes
// (trimmed history, dropped tombstones, evicted cache records) are reused
// by later writes, but the file keeps its largest size. Compact copies the
// live data into a new file and swaps it in while the database stays in
// use (docs/decisions/0016-history-trimming.md):
//
//   - The copy is written beside the database, as <file>.compact, from a
//     read transaction, while writers wait (an Update blocks; a View does
//     not). It is synced, then renamed over the database, and the directory
//     is synced. The new file is opened — and locked — before the rename,
//     so the path is never unlocked.
//   - kill -9 before the rename leaves the database as it was and a
//     partial copy, removed at the next Open; after the rename the copy is
//     complete and synced. Either way no committed transaction is lost.
//   - Readers already in the old file finish there; the old file is closed
//     once they are done. New transactions go to the new file.

// compactPath is where the copy of the database at path is built.
func compactPath(path string) string { return path + ".compact" }

// compactTxSize bounds one transaction of the copy.
const compactTxSize = 32 << 20

// Usage describes the space in the database file.
type Usage struct {
	Size int64 // the file
	Free int64 // pages free for reuse (bbolt keeps them; only a compaction returns them)
}

// Usage returns the size of the database file and how much of it is free.
func (d *DB) Usage() (Usage, error) {
	var u Usage
	b := d.cur.Load()
	err := b.View(func(tx *bolt.Tx) error {
		u.Size = tx.Size()
		return nil
	})
	st := b.Stats()
	u.Free = int64(st.FreePageN+st.PendingPageN) * int64(b.Info().PageSize)
	return u, err
}

// CompactWorth tells whether a compaction would give back enough to be
// worth it: at least minFree bytes and at least half the file.
func (u Usage) CompactWorth(minFree int64) bool {
	return u.Free >= minFree && 2*u.Free >= u.Size
}

// CompactStats says what a compaction did.
type CompactStats struct {
	Before, After int64         // file sizes
	WritersHeld   time.Duration // how long writers waited for the copy and swap
}

// Compact replaces the database file by a compacted copy of it; see the
// comment at the top of this file.
func (d *DB) Compact(ctx context.Context) (st CompactStats, err error) {
	const op = "compact database"
	tmp := compactPath(d.path)
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return st, &realize.Error{Op: op, Kind: realize.IO, Path: tmp, Err: err}
	}
	opts := boltOptions(false)
	opts.NoSync = true // synced once, whole, before it replaces anything
	dst, err := bolt.Open(tmp, 0o600, opts)
	if err != nil {
		return st, classifyOpenError(op, tmp, err)
	}
	fail := func(kind realize.ErrKind, err error) (CompactStats, error) {
		dst.Close()
		os.Remove(tmp)
		return st, &realize.Error{Op: op, Kind: kind, Path: d.path, Err: err}
	}
	d.writers.Lock()
	start := time.Now()
	old := d.cur.Load()
	swapped := false
	defer func() {
		st.WritersHeld = time.Since(start)
		d.writers.Unlock()
		if swapped {
			old.Close() // after the readers still in it
		}
	}()
	if err := ctx.Err(); err != nil {
		return fail(realize.Canceled, err)
	}
	if err := old.View(func(tx *bolt.Tx) error { st.Before = tx.Size(); return nil }); err != nil {
		return fail(realize.IO, err)
	}
	if err := copyInto(dst, old); err != nil {
		return fail(realize.Corrupt, err)
	}
	dst.NoSync = false
	if err := dst.Sync(); err != nil {
		return fail(realize.IO, err)
	}
	if err := os.Rename(tmp, d.path); err != nil {
		return fail(realize.IO, err)
	}
	swapped = true
	d.cur.Store(dst)
	if err := syncDir(filepath.Dir(d.path)); err != nil {
		return st, &realize.Error{Op: op, Kind: realize.IO, Path: d.path, Err: err}
	}
	err = dst.View(func(tx *bolt.Tx) error { st.After = tx.Size(); return nil })
	return st, err
}

// copyInto copies src into dst. bbolt panics on some damaged pages; that
// must fail the compaction, leaving the database as it is, not the daemon.
func copyInto(dst, src *bolt.DB) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("database is damaged (%v)", r)
		}
	}()
	return bolt.Compact(dst, src, compactTxSize)
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
