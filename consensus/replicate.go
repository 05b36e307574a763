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
	// Snapshot calls fn with every path the source knows and its frontier.
	Snapshot(ctx context.Context, arena realize.ArenaName, fn func(realize.Path, []realize.Alternative) error) error
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
// concurrent is lost), forgets this peer's copy of the author's log, and
// returns the source's first kept page of it.
func (r *Replicator) catchUp(ctx context.Context, src LogSource, author realize.PeerID) (*history.Page, error) {
	r.CatchUps.Add(1)
	unavailable := 0
	// Paths are applied a batch at a time: what only needs recording (a
	// new unpinned peer lists every file unreal) in one transaction.
	var paths []realize.Path
	var versions [][]realize.Alternative
	one := func(i int) error {
		err := r.Applier.ApplyVersions(ctx, paths[i], versions[i])
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
			if len(v) == 1 && v[0].Meta.Kind == realize.KindFile {
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
		paths, versions = paths[:0], versions[:0]
		return nil
	}
	err := src.Snapshot(ctx, r.Arena, func(p realize.Path, frontier []realize.Alternative) error {
		if _, err := realize.ParsePath(string(p)); err != nil || p.IsRoot() {
			return &realize.Error{Op: "catch up", Kind: realize.Corrupt, Arena: r.Arena, Path: string(p), Err: err}
		}
		paths, versions = append(paths, p), append(versions, frontier)
		if len(paths) < maxBatch {
			return nil
		}
		return flush()
	})
	if err == nil {
		err = flush()
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
	if err := r.DB.Update(func(tx *bolt.Tx) error { return r.Log.ResetCopy(tx, r.Arena, author) }); err != nil {
		return nil, err
	}
	return src.Page(ctx, r.Arena, author, 0)
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
		done := 0
		for done < len(entries) {
			batch := nextBatch(entries[done:])
			if err := r.applyBatch(ctx, author, batch); err != nil {
				return n + done, err
			}
			done += len(batch)
			// The cursor is committed every so often, not per entry:
			// applying an entry again after a crash is harmless (it is
			// then equal or older).
			if done%appliedEvery < len(batch) || done == len(entries) {
				if err := r.setApplied(author, entries[done-1].Seq); err != nil {
					return n + done, err
				}
			}
		}
		n += done
	}
}

// pendingRead bounds the entries read into memory at once: a new peer
// may have a million to apply.
const pendingRead = 4 * maxBatch

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

// maxParallel bounds the file entries applied at once.
const maxParallel = 8

// maxBatch bounds the entries of a batch (nextBatch): what only needs
// recording is committed in one transaction (one fsync) per batch, so it
// is as long as a page of history.
const maxBatch = history.MaxPageEntries

// nextBatch returns the entries to apply together: a run of file contents
// arriving (add, replace) at distinct paths, which commute, or else the
// single next entry. Removals, directory changes, renames, symlinks and
// conflicts keep their exact order: a removal overtaking an add could take
// away the local copy the add would have used (a rename relayed as add +
// remove would then move bytes).
func nextBatch(entries []*realize.Entry) []*realize.Entry {
	seen := map[realize.Path]bool{}
	n := 0
	for _, e := range entries {
		plain := e.Op == realize.OpAdd || e.Op == realize.OpReplace
		if !plain || seen[e.Path] || n == maxBatch {
			break
		}
		seen[e.Path] = true
		n++
	}
	return entries[:max(n, 1)]
}

// applyBatch applies entries concurrently (a batch from nextBatch) and
// sorts out their errors: the earliest error worth retrying stops the log
// there (later ones are applied again next time: harmless).
func (r *Replicator) applyBatch(ctx context.Context, author realize.PeerID, batch []*realize.Entry) error {
	// What only needs recording is recorded together; the rest (bytes to
	// fetch, anything to change on disk) entry by entry, concurrently.
	rest, err := r.Applier.ApplyRecords(ctx, batch)
	if err != nil {
		return errors.Join(fmt.Errorf("apply entries %d-%d of %s: %w", batch[0].Seq, batch[len(batch)-1].Seq, author.Short(), err),
			r.setApplied(author, batch[0].Seq-1))
	}
	errs := make([]error, len(batch))
	sem := make(chan struct{}, maxParallel)
	var wg sync.WaitGroup
	for _, i := range rest {
		e := batch[i]
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = r.Applier.Apply(ctx, e)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err == nil {
			continue
		}
		e := batch[i]
		switch {
		case realize.KindOf(err) == realize.Unavailable:
			if sup, serr := r.superseded(e); serr != nil || !sup {
				return errors.Join(serr, r.setApplied(author, e.Seq-1)) // wait for a peer that has the bytes
			}
		case retryLater(err):
			return errors.Join(fmt.Errorf("apply entry %d of %s (%s %s): %w", e.Seq, author.Short(), e.Op, e.Path, err),
				r.setApplied(author, e.Seq-1))
		default:
			r.Skipped.Add(1)
			if r.Logger != nil {
				r.Logger.Warn("history entry not applied", "arena", string(r.Arena), "author", author.Short(),
					"seq", e.Seq, "op", e.Op.String(), "path", string(e.Path), "err", err)
			}
		}
	}
	return nil
}

// appliedEvery is how many entries may be applied again after a crash;
// the cursor's commit costs an fsync.
const appliedEvery = 1024

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
func (s LocalSource) Snapshot(_ context.Context, _ realize.ArenaName, fn func(realize.Path, []realize.Alternative) error) error {
	return s.Arena.Snapshot(fn)
}

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
