package real

import (
	"sync"

	"github.com/realizefs/realize"
	bolt "go.etcd.io/bbolt"
)

// Placements are committed in groups. A placement puts its file in the
// real directory under the arena's lock and queues its record; it then
// lets go of the lock and waits for a commit, which takes everything
// queued by then: one fsync per directory touched and one database
// transaction (one history checkpoint) for the whole group, where each
// placement used to pay for its own, and commits no longer cap how many
// files a second are placed (docs/decisions/0013-sync-throughput.md).
//
// A file renamed into place but not yet recorded must never be seen by
// the scanner, which would record it as a local edit. So whoever takes
// the arena's lock to look at the disk commits the queue first
// (lockScan), or at least the entries of the paths it looks at.

// placed is a placement waiting for its commit.
type placed struct {
	path realize.Path
	ch   *Change
	st   Stat
	h    Hashed
	dir  string     // the directory to fsync before the commit; "" none
	done chan error // receives the commit's outcome
	// freed are kept-aside blobs a resolution let go: removed from
	// ConflictDir once the commit is durable.
	freed []realize.Hash
	// installed: the placement changed the real directory (not only the
	// index), so a whiteout or older temporary files may be left to clear.
	installed bool
}

// commitQueue holds placements installed but not yet recorded.
type commitQueue struct {
	mu      sync.Mutex
	items   []*placed
	queued  map[realize.Path]bool
	running sync.Mutex // one group commit at a time
}

// lockScan takes the arena's lock with nothing installed and unrecorded.
func (a *Arena) lockScan() {
	a.scanMu.Lock()
	a.commitQueued()
}

// enqueue queues a placement; the caller holds scanMu.
func (a *Arena) enqueue(it *placed) {
	it.done = make(chan error, 1)
	q := &a.commits
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.queued == nil {
		q.queued = map[realize.Path]bool{}
	}
	q.items = append(q.items, it)
	q.queued[it.path] = true
}

// isQueued tells whether path has a placement waiting for its commit.
func (a *Arena) isQueued(path realize.Path) bool {
	q := &a.commits
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.queued[path]
}

// awaitCommit commits the queue (or waits for whoever is committing it)
// and returns its placement's outcome, once what the placement left
// behind is cleared (afterCommit). The caller does not hold scanMu.
func (a *Arena) awaitCommit(it *placed) error {
	a.commitQueued()
	if err := <-it.done; err != nil {
		return err
	}
	if it.installed {
		// Only this path's own older transfers: the apply window never
		// places one path twice at once.
		a.dropTemps(it.path)
	}
	whiteout := it.installed && it.ch.Result.Meta.Kind == realize.KindNone
	if !whiteout && len(it.freed) == 0 {
		return nil
	}
	a.lockScan()
	defer a.scanMu.Unlock()
	return a.afterCommit(it)
}

// commitQueued commits every queued placement, and returns once any
// commit already under way has finished too.
func (a *Arena) commitQueued() {
	q := &a.commits
	q.running.Lock()
	defer q.running.Unlock()
	q.mu.Lock()
	items := q.items
	q.items = nil
	clear(q.queued)
	q.mu.Unlock()
	if len(items) == 0 {
		return
	}
	synced := map[string]error{}
	var ok []*placed
	for _, it := range items {
		if it.dir == "" {
			ok = append(ok, it)
			continue
		}
		err, done := synced[it.dir]
		if !done {
			err = syncDir(it.dir)
			synced[it.dir] = err
		}
		if err != nil {
			it.done <- a.placeErr(it.path, realize.IO, err)
			continue
		}
		ok = append(ok, it)
	}
	err := a.update(func(tx *bolt.Tx, ix *Index) error { return a.commitPlacedIn(tx, ix, ok) })
	if err == nil || len(ok) == 1 {
		for _, it := range ok {
			it.done <- err
		}
		return
	}
	// One bad record must not fail the others: commit them one by one.
	for _, it := range ok {
		it.done <- a.update(func(tx *bolt.Tx, ix *Index) error { return a.commitPlacedIn(tx, ix, []*placed{it}) })
	}
}

// afterCommit clears, under the arena's lock, what a committed placement
// left behind: the whiteout of a name removed through an overlay mount
// over its lower layer (the index no longer has the name), and kept-aside
// bytes let go (a resolution's drops, a version that won again). The lock
// matters: a placement moving the same bytes aside meanwhile must not see
// them removed before its record names them.
func (a *Arena) afterCommit(it *placed) error {
	if it.installed && it.ch.Result.Meta.Kind == realize.KindNone {
		a.removeWhiteout(it.path)
	}
	if len(it.freed) == 0 {
		return nil
	}
	return a.freeKept(it.freed)
}

// commitPlacedIn records placed changes: index records, history entries
// and conflict records, in tx.
func (a *Arena) commitPlacedIn(tx *bolt.Tx, ix *Index, items []*placed) error {
	if len(items) == 0 {
		return nil
	}
	entries := make([]*realize.Entry, 0, len(items))
	recs := make([]*Record, 0, len(items))
	for _, it := range items {
		ch := it.ch
		it.freed = nil
		if ch.Result.Meta.Kind == realize.KindFile && !ch.Keep && !ch.Unreal {
			// The block map is a function of the bytes: computed here
			// while verifying, it is the same every peer computed.
			if err := ix.PutBlob(it.h.Blob, it.h.Size, it.h.Blocks); err != nil {
				return err
			}
		}
		unreal := ch.Unreal && ch.Result.Meta.Kind == realize.KindFile
		recs = append(recs, &Record{Meta: ch.Result.Meta, Stat: it.st, Version: ch.Result.Version, Origin: ch.Result.Origin,
			Deleted: ch.Result.Meta.Kind == realize.KindNone, Own: ch.Own, Others: ch.Others, Unreal: unreal})
		e := &realize.Entry{Op: ch.Op, Path: it.path, Meta: ch.Result.Meta, Version: ch.Result.Version,
			Origin: ch.Result.Origin, Unreal: unreal}
		switch {
		case len(ch.Others) > 0 && ch.Op != realize.OpRealize && ch.Op != realize.OpUnrealize:
			e.Op, e.Own, e.Losers = realize.OpConflict, ch.Own, ch.Others
		case ch.Op == realize.OpResolve:
			e.Own = ch.Drop
		}
		if e.Origin.IsZero() && !ch.Stamp {
			e.Origin = a.self // never let Append re-stamp a decided version
		}
		entries = append(entries, e)
	}
	if err := a.log.Append(tx, a.name, entries); err != nil {
		return err
	}
	for i, it := range items {
		ch := it.ch
		if ch.Stamp {
			recs[i].Version, recs[i].Origin = entries[i].Version, entries[i].Origin
		}
		if !ch.dropOnly() {
			if err := ix.Put(it.path, recs[i]); err != nil {
				return err
			}
		}
		if err := ix.PutConflicts(it.path, ch.Losers, ch.Result.Version); err != nil {
			return err
		}
		if len(ch.Others) > 0 {
			// The version shown is not kept aside where the decision
			// covers what named it: it won again (see conflicts.go).
			won := realize.Alternative{Origin: ch.Result.Origin, Meta: ch.Result.Meta, Version: ch.Own}
			g, err := ix.PutWin(it.path, won, ch.Result.Version)
			if err != nil {
				return err
			}
			it.freed = append(it.freed, g...)
		}
		if entries[i].Op == realize.OpResolve && ch.Drop != nil {
			g, err := ix.Drop(it.path, ch.Drop)
			if err != nil {
				return err
			}
			// The bytes now at the path may have been kept aside too.
			it.freed = append(append(it.freed, g...), ch.Result.Meta.Blob)
		}
	}
	return ix.Flush()
}
