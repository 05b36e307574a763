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
//     read transaction, and synced. Writers run meanwhile; then they are
//     held back (an Update waits; a View never does) while Compact checks
//     that none committed since the copy began, renames the copy over the
//     database and syncs the directory. If one did, the copy is made again;
//     after two such tries the copy is made holding writers back throughout
//     if the live data is small (at most lockedCopyMax), else the
//     compaction is left for later. The new file is opened — and locked — before the rename,
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
	var pageSize int
	err := b.View(func(tx *bolt.Tx) error {
		u.Size = tx.Size()
		// Info reads the mapping, which a growing write transaction
		// replaces; an open read transaction holds that back.
		pageSize = b.Info().PageSize
		return nil
	})
	st := b.Stats()
	u.Free = int64(st.FreePageN+st.PendingPageN) * int64(pageSize)
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
	WritersHeld   time.Duration // how long writers waited
	Copies        int           // copies made: more than one when writes came during the first
}

// optimisticCopies is how many copies are made while writers run before
// one is made holding them back — only if the live data is at most
// lockedCopyMax, which bounds how long writers can be held back (the time
// to copy that much). A larger database is left for a quieter moment.
const (
	optimisticCopies = 2
	lockedCopyMax    = 32 << 20
)

// Compact replaces the database file by a compacted copy of it; see the
// comment at the top of this file. A Busy error means writes kept coming
// and the database is too large to hold them back: try again later.
func (d *DB) Compact(ctx context.Context) (CompactStats, error) {
	d.compacting.Lock()
	defer d.compacting.Unlock()
	var st CompactStats
	for {
		locked := st.Copies >= optimisticCopies
		if locked {
			u, err := d.Usage()
			if err != nil {
				return st, err
			}
			if u.Size-u.Free > lockedCopyMax {
				return st, &realize.Error{Op: "compact database", Kind: realize.Busy, Path: d.path,
					Err: fmt.Errorf("writes came during each of %d copies; will retry", st.Copies)}
			}
		}
		st.Copies++
		done, err := d.compactOnce(ctx, locked, &st)
		if err != nil || done {
			return st, err
		}
	}
}

// compactOnce copies the database beside it and swaps the copy in. Unless
// locked, writers run during the copy and are held back only to check that
// none committed meanwhile and to swap; if one did, the copy is thrown
// away and done is false.
func (d *DB) compactOnce(ctx context.Context, locked bool, st *CompactStats) (done bool, err error) {
	const op = "compact database"
	tmp := compactPath(d.path)
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, &realize.Error{Op: op, Kind: realize.IO, Path: tmp, Err: err}
	}
	if err := ctx.Err(); err != nil {
		return false, &realize.Error{Op: op, Kind: realize.Canceled, Path: d.path, Err: err}
	}
	opts := boltOptions(false)
	opts.NoSync = true // synced once, whole, before it replaces anything
	dst, err := bolt.Open(tmp, 0o600, opts)
	if err != nil {
		return false, classifyOpenError(op, tmp, err)
	}
	swapped := false
	var held time.Time
	hold := func() { d.writers.Lock(); held = time.Now() }
	defer func() {
		if !swapped {
			dst.Close()
			os.Remove(tmp)
		}
	}()
	if locked {
		hold()
	}
	old := d.cur.Load() // only Compact changes it, and it is serialized
	defer func() {
		if !held.IsZero() {
			st.WritersHeld += time.Since(held)
			d.writers.Unlock()
		}
		if swapped {
			old.Close() // after the readers still in it
		}
	}()
	fail := func(kind realize.ErrKind, err error) (bool, error) {
		return false, &realize.Error{Op: op, Kind: kind, Path: d.path, Err: err}
	}
	before, size, err := txState(old)
	if err != nil {
		return fail(realize.IO, err)
	}
	if err := copyInto(dst, old); err != nil {
		return fail(realize.Corrupt, err)
	}
	dst.NoSync = false
	if err := dst.Sync(); err != nil {
		return fail(realize.IO, err)
	}
	if !locked {
		hold()
		if now, _, err := txState(old); err != nil || now != before {
			return false, err // a write came during the copy: copy again
		}
	}
	if err := os.Rename(tmp, d.path); err != nil {
		return fail(realize.IO, err)
	}
	swapped = true
	d.cur.Store(dst)
	st.Before = size
	if err := syncDir(filepath.Dir(d.path)); err != nil {
		return fail(realize.IO, err)
	}
	_, st.After, err = txState(dst)
	return true, err
}

// txState returns the id of the last committed transaction and the size
// of the file.
func txState(db *bolt.DB) (id int, size int64, err error) {
	err = db.View(func(tx *bolt.Tx) error {
		id, size = tx.ID(), tx.Size()
		return nil
	})
	return id, size, err
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
