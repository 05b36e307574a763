package consensus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/history"
	"github.com/realizefs/realize/internal/store"
	"github.com/realizefs/realize/real"
	"github.com/realizefs/realize/unreal/listing"
	bolt "go.etcd.io/bbolt"
)

// LogSource is one peer's offer of history for an arena: the logs it holds
// (its own and those it relays) and pages of them. The household
// implements it over QUIC; the test harness in memory.
type LogSource interface {
	Logs(ctx context.Context, arena realize.ArenaName) ([]history.LogHead, error)
	// Page returns entries of a log from sequence number from, ending at a
	// checkpoint, or nil when there is nothing new. A Kind NotExist error
	// means the entries were trimmed: catch up by snapshot. From 0 means
	// from the first entry the source keeps.
	Page(ctx context.Context, arena realize.ArenaName, author realize.PeerID, from uint64) (*history.Page, error)
	// Snapshot calls fn with every path the source knows, its frontier,
	// and whether the source keeps its bytes real.
	Snapshot(ctx context.Context, arena realize.ArenaName, fn func(real.Snap) error) error
}

// Peered is a LogSource that knows which peer it is: a snapshot from the
// author of a log also says what that author holds.
type Peered interface {
	Peer() realize.PeerID
}

// Replicator keeps this peer's copies of the household's logs of one
// arena and applies them to its real directory.
type Replicator struct {
	DB      *store.DB
	Log     *history.Log
	Self    realize.PeerID
	Arena   realize.ArenaName
	Applier *Applier
	Verify  history.Verifier
	Logger  *slog.Logger // nil: silent
	// CatchUps counts catch-ups by snapshot (for status and tests).
	CatchUps atomic.Int64
	// Skipped counts entries this peer could not take and skipped (an
	// ignored path, a removed directory still full here, ...).
	Skipped atomic.Int64
}

// Pull stores every entry src offers that this peer lacks, verified page
// by page against each log's author. It returns the number of new entries.
func (r *Replicator) Pull(ctx context.Context, src LogSource) (int, error) {
	heads, err := src.Logs(ctx, r.Arena)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, h := range heads {
		if h.Peer == r.Self {
			continue // never take one's own log from others
		}
		k, err := r.pullLog(ctx, src, h)
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (r *Replicator) pullLog(ctx context.Context, src LogSource, h history.LogHead) (int, error) {
	n := 0
	for {
		have, err := r.head(h.Peer)
		if err != nil || have >= h.Seq {
			return n, err
		}
		page, err := src.Page(ctx, r.Arena, h.Peer, have+1)
		if realize.KindOf(err) == realize.NotExist {
			// The source no longer keeps what follows our copy: take its
			// state by snapshot, then its log from where it keeps it.
			if page, err = r.catchUp(ctx, src, h.Peer); err != nil {
				return n, err
			}
		}
		if err != nil || page == nil {
			return n, err
		}
		var fresh []*realize.Entry
		err = r.DB.Update(func(tx *bolt.Tx) (err error) {
			if fresh, err = r.Log.AppendRemote(tx, page, r.Verify); err != nil {
				return err
			}
			// Who holds what, as the author's log says, kept in step with
			// the stored copy of that log.
			for _, e := range fresh {
				if err := listing.Observe(tx, e); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return n, err
		}
		if len(fresh) == 0 {
			return n, nil
		}
		n += len(fresh)
	}
}

// catchUp applies the source's snapshot as incoming versions of every path
// (the same decision as for entries: nothing newer is overwritten, nothing
// concurrent is lost), applies what this peer stored of the author's log
// and had not applied yet, then forgets its copy of that log and returns
// the source's first kept page of it. The copy is forgotten only once all
// of it is applied: an entry stored but not applied (waiting for bytes)
// may be a deletion the snapshot no longer shows, its tombstone dropped
// at the source because every peer, this one included, had stored it.
func (r *Replicator) catchUp(ctx context.Context, src LogSource, author realize.PeerID) (*history.Page, error) {
	r.CatchUps.Add(1)
	held := r.heldBy(src, author)
	if err := r.DB.Update(func(tx *bolt.Tx) error { return listing.Forget(tx, r.Arena, author) }); err != nil {
		return nil, err
	}
	unavailable := 0
	// Paths are applied a batch at a time: what only needs recording (a
	// new unpinned peer lists every file unreal) in one transaction.
	var paths []realize.Path
	var versions [][]realize.Alternative
	var conflicts []*real.ConflictState
	one := func(i int) error {
		err := r.Applier.ApplyVersions(ctx, paths[i], versions[i], conflicts[i])
		switch {
		case err == nil:
		case realize.KindOf(err) == realize.Unavailable:
			unavailable++ // bytes nowhere now: this catch-up must be done again
		case retryLater(err):
			return err
		default:
			r.Skipped.Add(1) // a path this peer cannot take (ignored here, ...)
		}
		return nil
	}
	flush := func() error {
		// Directories, removals and conflicts one by one, in order (a
		// directory is made before the files in it); then the files.
		var files []int
		for i, v := range versions {
			if len(v) == 1 && v[0].Meta.Kind == realize.KindFile && conflicts[i] == nil {
				files = append(files, i)
			} else if err := one(i); err != nil {
				return err
			}
		}
		fp := make([]realize.Path, len(files))
		fv := make([][]realize.Alternative, len(files))
		for j, i := range files {
			fp[j], fv[j] = paths[i], versions[i]
		}
		rest, err := r.Applier.ApplyVersionsRecords(ctx, fp, fv)
		if err != nil {
			return err
		}
		for _, j := range rest {
			if err := one(files[j]); err != nil {
				return err
			}
		}
		paths, versions, conflicts = paths[:0], versions[:0], conflicts[:0]
		return nil
	}
	err := src.Snapshot(ctx, r.Arena, func(s real.Snap) error {
		if _, err := realize.ParsePath(string(s.Path)); err != nil || s.Path.IsRoot() {
			return &realize.Error{Op: "catch up", Kind: realize.Corrupt, Arena: r.Arena, Path: string(s.Path), Err: err}
		}
		if err := held.add(s); err != nil {
			return err
		}
		paths, versions, conflicts = append(paths, s.Path), append(versions, s.Frontier), append(conflicts, s.Conflicts)
		if len(paths) < maxBatch {
			return nil
		}
		return flush()
	})
	if err == nil {
		err = flush()
	}
	if err == nil {
		err = held.flush()
	}
	if err != nil {
		return nil, err
	}
	if unavailable > 0 {
		// The trimmed entries will not bring these paths again: keep our
		// copy of the log as it is, so the next pull catches up again.
		return nil, &realize.Error{Op: "catch up", Kind: realize.Unavailable, Arena: r.Arena,
			Err: fmt.Errorf("the bytes of %d paths are on no reachable peer; will retry", unavailable)}
	}
	if err := r.applyAll(ctx, author); err != nil {
		return nil, err
	}
	if err := r.DB.Update(func(tx *bolt.Tx) error { return r.Log.ResetCopy(tx, r.Arena, author) }); err != nil {
		return nil, err
	}
	return src.Page(ctx, r.Arena, author, 0)
}

// applyAll applies every stored entry of author's log, or fails with an
// Unavailable error when some must wait.
func (r *Replicator) applyAll(ctx context.Context, author realize.PeerID) error {
	if _, err := r.applyLog(ctx, author); err != nil {
		return err
	}
	var applied, stored uint64
	err := r.DB.View(func(tx *bolt.Tx) error {
		h, err := r.Log.Head(tx, r.Arena, author)
		applied, stored = r.Log.Applied(tx, r.Arena, author), h.Seq
		return err
	})
	if err == nil && applied < stored {
		err = &realize.Error{Op: "catch up", Kind: realize.Unavailable, Arena: r.Arena, Peer: author,
			Err: fmt.Errorf("entries %d-%d of the stored log wait to be applied; will retry", applied+1, stored)}
	}
	return err
}

// heldBy returns the writer that records, during a catch-up on author's
// log, the files the snapshot says author holds: only a snapshot from
// author itself says so.
func (r *Replicator) heldBy(src LogSource, author realize.PeerID) *heldWriter {
	w := &heldWriter{db: r.DB, arena: r.Arena}
	if p, ok := src.(Peered); ok && p.Peer() == author {
		w.peer = &author
	}
	return w
}

// heldWriter records, in batches, the paths a snapshot's source holds.
type heldWriter struct {
	db    *store.DB
	arena realize.ArenaName
	peer  *realize.PeerID // nil: the source is not the author; nothing recorded
	batch []real.Snap
}

func (w *heldWriter) add(s real.Snap) error {
	if w.peer == nil || !s.Held || len(s.Frontier) == 0 || s.Frontier[0].Meta.Kind != realize.KindFile {
		return nil
	}
	if w.batch = append(w.batch, s); len(w.batch) < 1024 {
		return nil
	}
	return w.flush()
}

func (w *heldWriter) flush() error {
	if len(w.batch) == 0 {
		return nil
	}
	err := w.db.Update(func(tx *bolt.Tx) error {
		for _, s := range w.batch {
			if err := listing.Held(tx, w.arena, *w.peer, s.Path, s.Frontier[0].Meta.Blob); err != nil {
				return err
			}
		}
		return nil
	})
	w.batch = w.batch[:0]
	return err
}

func (r *Replicator) head(author realize.PeerID) (uint64, error) {
	var seq uint64
	err := r.DB.View(func(tx *bolt.Tx) error {
		h, err := r.Log.Head(tx, r.Arena, author)
		seq = h.Seq
		return err
	})
	return seq, err
}

// ApplyPending applies the stored entries of other peers' logs that are
// not applied yet, each log in order, advancing each log's applied cursor.
// An entry whose bytes no reachable peer has is skipped when a later
// version of its path is known (nobody needs those bytes any more) and
// otherwise left pending, with the rest of its log, for a later call.
func (r *Replicator) ApplyPending(ctx context.Context) (int, error) {
	var ids []history.LogID
	if err := r.DB.View(func(tx *bolt.Tx) (err error) { ids, err = r.Log.Logs(tx); return err }); err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, id := range ids {
		if id.Peer == r.Self || id.Arena != r.Arena {
			continue
		}
		// One log stuck (waiting for bytes, a failing disk) must not hold
		// back the others.
		k, err := r.applyLog(ctx, id.Peer)
		n += k
		if err != nil {
			errs = append(errs, err)
		}
	}
	return n, errors.Join(errs...)
}

// retryLater tells whether an apply error is worth retrying the entry for
// (later, in order); other errors skip the entry with a warning, so that
// one entry this peer cannot take never blocks a log.
func retryLater(err error) bool {
	switch realize.KindOf(err) {
	case realize.Unavailable, realize.Changed, realize.Canceled, realize.IO, realize.Busy:
		return true
	}
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

func (r *Replicator) applyLog(ctx context.Context, author realize.PeerID) (int, error) {
	n := 0
	for {
		entries, err := r.pendingEntries(author)
		if err != nil || len(entries) == 0 {
			return n, err
		}
		w := newWindow(r, author, entries)
		for i, e := range entries {
			if !w.admit(ctx, i, e) {
				break
			}
		}
		done, err := w.finish()
		n += done
		if err != nil || done < len(entries) {
			return n, err
		}
	}
}

// maxBatch bounds the paths of a snapshot applied together: what only
// needs recording is committed in one transaction (one fsync) per batch.
const maxBatch = history.MaxPageEntries

// pendingRead bounds the entries read into memory at once: a new peer
// may have a million to apply.
const pendingRead = 4096

// pendingEntries reads the next entries of author's log not applied yet,
// at most pendingRead of them.
func (r *Replicator) pendingEntries(author realize.PeerID) ([]*realize.Entry, error) {
	var entries []*realize.Entry
	err := r.DB.View(func(tx *bolt.Tx) error {
		from := r.Log.Applied(tx, r.Arena, author) + 1
		return r.Log.Scan(tx, r.Arena, author, from, func(e *realize.Entry, _ realize.Hash) error {
			entries = append(entries, e)
			if len(entries) == pendingRead {
				return history.ErrStop
			}
			return nil
		})
	})
	return entries, err
}

// Entries are applied through a window sliding along the log. File
// contents arriving (add, replace) at distinct paths commute, so up to
// maxWeight of them run at once (a large file weighs more: each has its
// own transfer); removals, directory changes, renames, symlinks and
// conflicts keep their exact order: each waits for everything before it
// and runs alone. (A removal overtaking an add could take away the local
// copy the add would have used; a rename relayed as add + remove would
// then move bytes.) Many small files in flight let the arena commit their
// records in groups (real's group commit).
const (
	maxWeight = 256
	bigWeight = 64 // a file larger than one block
)

// window applies one log's entries, keeping the applied cursor behind
// every entry not yet done.
type window struct {
	r       *Replicator
	author  realize.PeerID
	entries []*realize.Entry
	sem     chan struct{}
	wg      sync.WaitGroup
	saveMu  sync.Mutex // cursor writes in order

	mu      sync.Mutex
	busy    map[realize.Path]bool // paths being applied
	done    []bool
	mark    int   // entries[:mark] are done
	saved   int   // the applied cursor is at entries[saved-1]
	stopped int   // lowest entry whose error stops the log; -1 none
	err     error // that error
}

func newWindow(r *Replicator, author realize.PeerID, entries []*realize.Entry) *window {
	return &window{r: r, author: author, entries: entries, sem: make(chan struct{}, maxWeight),
		busy: map[realize.Path]bool{}, done: make([]bool, len(entries)), stopped: -1}
}

func plain(e *realize.Entry) bool { return e.Op == realize.OpAdd || e.Op == realize.OpReplace }

func weight(e *realize.Entry) int {
	if e.Meta.Size > real.OneBlockMax {
		return bigWeight
	}
	return 1
}

// admit applies entry i, in the background if it is plain. It returns
// false once the log must stop.
func (w *window) admit(ctx context.Context, i int, e *realize.Entry) bool {
	w.mu.Lock()
	clash := w.busy[e.Path]
	w.mu.Unlock()
	if !plain(e) || clash {
		w.wg.Wait()
	}
	if w.isStopped() || ctx.Err() != nil {
		return false
	}
	if !plain(e) {
		w.result(i, w.r.Applier.Apply(ctx, e))
		return !w.isStopped()
	}
	n := weight(e)
	for k := 0; k < n; k++ {
		select {
		case w.sem <- struct{}{}:
		case <-ctx.Done():
			for ; k > 0; k-- {
				<-w.sem
			}
			return false
		}
	}
	w.mu.Lock()
	w.busy[e.Path] = true
	w.mu.Unlock()
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		err := w.r.Applier.Apply(ctx, e)
		w.mu.Lock()
		delete(w.busy, e.Path)
		w.mu.Unlock()
		for k := 0; k < n; k++ {
			<-w.sem
		}
		w.result(i, err)
	}()
	return true
}

func (w *window) isStopped() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stopped >= 0
}

// result sorts out entry i's outcome: an error worth retrying stops the
// log there (entries after it that were applied meanwhile are applied
// again next time: harmless); other errors skip the entry with a warning,
// so that one entry this peer cannot take never blocks a log.
func (w *window) result(i int, err error) {
	e := w.entries[i]
	if err != nil {
		switch {
		case realize.KindOf(err) == realize.Unavailable:
			if sup, serr := w.r.superseded(e); serr != nil || !sup {
				// Wait for a peer that has the bytes: the log stops here.
				w.stop(i, errors.Join(serr, fmt.Errorf("apply entry %d of %s (%s %s): %w", e.Seq, w.author.Short(), e.Op, e.Path, err)))
				return
			}
		case retryLater(err):
			w.stop(i, fmt.Errorf("apply entry %d of %s (%s %s): %w", e.Seq, w.author.Short(), e.Op, e.Path, err))
			return
		default:
			w.r.Skipped.Add(1)
			if w.r.Logger != nil {
				w.r.Logger.Warn("history entry not applied", "arena", string(w.r.Arena), "author", w.author.Short(),
					"seq", e.Seq, "op", e.Op.String(), "path", string(e.Path), "err", err)
			}
		}
	}
	w.mu.Lock()
	w.done[i] = true
	for w.mark < len(w.done) && w.done[w.mark] {
		w.mark++
	}
	save := w.stopped < 0 && w.mark-w.saved >= appliedEvery
	mark := w.mark
	w.mu.Unlock()
	// The cursor is committed every so often, not per entry: applying
	// an entry again after a crash is harmless (it is then equal or
	// older).
	if save {
		w.saveCursor(mark)
	}
}

func (w *window) stop(i int, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped < 0 || i < w.stopped {
		w.stopped, w.err = i, err
	}
}

// saveCursor records entries[:mark] as applied, if that is further than
// recorded.
func (w *window) saveCursor(mark int) error {
	w.saveMu.Lock()
	defer w.saveMu.Unlock()
	w.mu.Lock()
	if mark <= w.saved {
		w.mu.Unlock()
		return nil
	}
	w.saved = mark
	w.mu.Unlock()
	return w.r.setApplied(w.author, w.entries[mark-1].Seq)
}

// finish waits for the entries in flight and sets the applied cursor
// after the last entry done with nothing undone before it.
func (w *window) finish() (int, error) {
	w.wg.Wait()
	w.mu.Lock()
	stopped, err, mark := w.stopped, w.err, w.mark
	w.mu.Unlock()
	if stopped >= 0 {
		// Up to the stopping entry, everything before it finished.
		return stopped, errors.Join(err, w.r.setApplied(w.author, w.entries[stopped].Seq-1))
	}
	return mark, w.saveCursor(mark)
}

const appliedEvery = 64

func (r *Replicator) setApplied(author realize.PeerID, seq uint64) error {
	return r.DB.Update(func(tx *bolt.Tx) error { return r.Log.SetApplied(tx, r.Arena, author, seq) })
}

// superseded tells whether any stored log has a version of e's path that
// causally follows e's. It reads every log: the household listing (a later
// step) will answer it from an index.
func (r *Replicator) superseded(e *realize.Entry) (bool, error) {
	found := false
	err := r.DB.View(func(tx *bolt.Tx) error {
		ids, err := r.Log.Logs(tx)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if id.Arena != r.Arena {
				continue
			}
			err := r.Log.Scan(tx, id.Arena, id.Peer, 0, func(o *realize.Entry, _ realize.Hash) error {
				v := o.Version
				switch {
				case o.Path == e.Path:
				case o.From == e.Path:
					v = o.FromVersion
				default:
					return nil
				}
				if v.Compare(e.Version) == realize.After {
					found = true
					return history.ErrStop
				}
				return nil
			})
			if err != nil || found {
				return err
			}
		}
		return nil
	})
	return found, err
}

// LocalSource offers this peer's own stored logs and index as a
// LogSource: what a serving peer hands out, and what the in-process harness
// connects.
type LocalSource struct {
	DB    *store.DB
	Log   *history.Log
	Arena *real.Arena
}

// Snapshot offers the arena's index.
func (s LocalSource) Snapshot(_ context.Context, _ realize.ArenaName, fn func(real.Snap) error) error {
	return s.Arena.Snapshot(fn)
}

// Peer is the peer whose database this is.
func (s LocalSource) Peer() realize.PeerID { return s.Log.Self() }

// Logs lists the logs stored for arena with their heads.
func (s LocalSource) Logs(_ context.Context, arena realize.ArenaName) (heads []history.LogHead, err error) {
	err = s.DB.View(func(tx *bolt.Tx) error {
		heads, err = s.Log.Heads(tx, arena)
		return err
	})
	return heads, err
}

// Page reads a page of a stored log.
func (s LocalSource) Page(_ context.Context, arena realize.ArenaName, author realize.PeerID, from uint64) (*history.Page, error) {
	var p *history.Page
	err := s.DB.View(func(tx *bolt.Tx) (err error) { p, err = s.Log.ReadPage(tx, arena, author, from); return err })
	return p, err
}
