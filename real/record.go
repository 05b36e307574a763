package real

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/realizefs/realize"
	bolt "go.etcd.io/bbolt"
)

// Batching of hashed files into transactions. Each commit is one fsync;
// committing per file would make indexing a tree of small files disk-bound.
// The delay only matters during a long scan (a lone edit is committed as
// soon as it is hashed); 512 files or 250 ms made a first index of 100k
// small files ~1.6x slower (decision 0018).
const (
	commitFiles = 4096
	commitBytes = 256 << 20
	commitDelay = time.Second
)

// pending pairs a history entry with the index record it produces. The
// record's version is only known once the log has assigned a sequence
// number, so fix fills it in after Append.
type pending struct {
	entry *realize.Entry
	path  realize.Path
	rec   *Record
	fix   func(e *realize.Entry, r *Record)
}

func setVersion(e *realize.Entry, r *Record) { r.Version, r.Origin = e.Version, e.Origin }

// record writes a plan: structural changes first, then hashed files.
func (a *Arena) record(ctx context.Context, p *plan) error {
	if err := a.applyRedirects(p); err != nil {
		return err
	}
	p.matchRenames()
	if err := a.guardPlan(p); err != nil {
		return err
	}
	p.sort()
	if err := a.commitKept(a.structural(p), p.keptMoves()); err != nil {
		return err
	}
	a.forgetRecordedUnreal(p)
	a.consumeOverlay(p)
	return a.hashAll(ctx, p.hash)
}

// structural turns the non-hashing part of a plan into entries, in replay
// order (see plan.sort).
func (a *Arena) structural(p *plan) []pending {
	var out []pending
	under := func(q realize.Path) bool {
		for r := range p.retyped {
			if q.HasPrefix(r) {
				return true
			}
		}
		return false
	}
	removals := func(first bool) {
		for _, g := range p.removed {
			if under(g.path) == first {
				out = append(out, a.removal(g, realize.OpRemove))
			}
		}
		for _, g := range p.rmdirs {
			if under(g.path) == first {
				out = append(out, a.removal(g, realize.OpRmdir))
			}
		}
	}
	removals(true)
	for _, d := range p.mkdirs {
		m := realize.Meta{Kind: realize.KindDir, MTime: d.stat.MTime}
		out = append(out, pending{entry: &realize.Entry{Op: realize.OpMkdir, Path: d.path, Meta: m, Version: versionOf(d.old)},
			path: d.path, rec: &Record{Meta: m, Stat: d.stat}, fix: setVersion})
	}
	for _, l := range p.links {
		m := realize.Meta{Kind: realize.KindSymlink, MTime: l.stat.MTime, Target: l.target}
		out = append(out, pending{entry: &realize.Entry{Op: realize.OpSymlink, Path: l.path, Meta: m, Version: versionOf(l.old)},
			path: l.path, rec: &Record{Meta: m, Stat: l.stat}, fix: setVersion})
	}
	for _, r := range p.renames {
		m := r.rec.Meta
		e := &realize.Entry{Op: realize.OpRename, Path: r.to, From: r.from, Meta: m, Version: versionOf(r.old), FromVersion: r.rec.Version}
		// The content is carried over on the strength of an unchanged
		// (inode, size, mtime), which a tool restoring mtimes (cp -p,
		// rsync -t) defeats: the destination's ctime is poisoned so the
		// next look rehashes it locally, and records any difference.
		st := r.stat
		st.CTime = -1
		rec := &Record{Meta: m, Stat: st}
		if r.unreal {
			// No bytes moved: the destination is as unreal as the source.
			rec.Unreal, rec.Stat, e.Unreal = true, Stat{}, true
		}
		out = append(out, pending{entry: e, path: r.to, rec: rec, fix: setVersion})
		if !r.unreal && r.rec.Stat.CTime == -1 {
			// The source was racily clean (written moments ago): look again
			// right away rather than at the next rescan.
			a.retryLater(r.to)
		}
		// The source becomes a tombstone with the entry's FromVersion.
		out = append(out, pending{path: r.from, rec: &Record{Deleted: true}, fix: func(e *realize.Entry, rec *Record) {
			rec.Version, rec.Origin = e.FromVersion, e.Origin
		}})
	}
	removals(false)
	return out
}

func (a *Arena) removal(g gone, op realize.Op) pending {
	return pending{
		entry: &realize.Entry{Op: op, Path: g.path, Version: g.rec.Version},
		path:  g.path, rec: &Record{Deleted: true}, fix: setVersion,
	}
}

func versionOf(r *Record) realize.VersionVector {
	if r == nil {
		return nil
	}
	return r.Version
}

// commit appends the entries and stores the records in one transaction.
func (a *Arena) commit(ps []pending) error { return a.commitKept(ps, nil) }

// commitKept is commit of a plan whose kept moves keep their whiteouts.
func (a *Arena) commitKept(ps []pending, kept []move) error {
	if len(ps) == 0 {
		return nil
	}
	return a.update(func(tx *bolt.Tx, ix *Index) error { return a.commitIn(tx, ix, ps, kept) })
}

// commitIn does commit's work inside tx. Records without an entry (rename
// sources) take their version from the entry before them, or keep their
// own.
func (a *Arena) commitIn(tx *bolt.Tx, ix *Index, ps []pending, kept []move) error {
	entries := make([]*realize.Entry, 0, len(ps))
	for _, p := range ps {
		if p.entry != nil {
			entries = append(entries, p.entry)
		}
	}
	if err := a.log.Append(tx, a.name, entries); err != nil {
		return err
	}
	if err := a.observeMoves(tx, ix, entries, kept); err != nil {
		return err
	}
	var last *realize.Entry
	for _, p := range ps {
		if p.entry != nil {
			last = p.entry
		}
		p.fix(last, p.rec)
		if err := ix.Put(p.path, p.rec); err != nil {
			return err
		}
	}
	return ix.Flush()
}

type hashResult struct {
	job    hashJob
	hashed Hashed
	err    error
}

// hashAll hashes files on a worker pool and commits results in batches.
func (a *Arena) hashAll(ctx context.Context, jobs []hashJob) error {
	if len(jobs) == 0 {
		return nil
	}
	var total int64
	for _, j := range jobs {
		total += j.stat.Size
	}
	a.status.addPending(int64(len(jobs)), total)
	defer a.status.clearPending()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	in := make(chan hashJob)
	out := make(chan hashResult, a.workers)
	var wg sync.WaitGroup
	for range a.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range in {
				h, err := a.hasher.HashFile(ctx, a.abs(j.path), j.stat)
				out <- hashResult{job: j, hashed: h, err: err}
			}
		}()
	}
	go func() {
		defer close(in)
		for _, j := range jobs {
			select {
			case in <- j:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { wg.Wait(); close(out) }()
	return a.commitResults(ctx, out)
}

// commitResults drains hash results, committing every commitFiles files,
// commitBytes bytes or commitDelay, whichever comes first.
func (a *Arena) commitResults(ctx context.Context, out <-chan hashResult) error {
	var batch []hashResult
	var bytes int64
	timer := time.NewTimer(commitDelay)
	defer timer.Stop()
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := a.commitHashed(batch)
		for _, r := range batch {
			a.status.donePending(r.job.stat.Size)
		}
		batch, bytes = batch[:0], 0
		return err
	}
	var firstErr error
	for {
		select {
		case r, ok := <-out:
			if !ok {
				if err := flush(); err != nil && firstErr == nil {
					firstErr = err
				}
				if firstErr == nil {
					firstErr = ctx.Err()
				}
				return firstErr
			}
			if !a.hashOK(r) {
				a.status.donePending(r.job.stat.Size)
				continue
			}
			if len(batch) == 0 {
				timer.Reset(commitDelay)
			}
			batch, bytes = append(batch, r), bytes+r.hashed.Size
			if len(batch) >= commitFiles || bytes >= commitBytes {
				if err := flush(); err != nil && firstErr == nil {
					firstErr = err
				}
			}
		case <-timer.C:
			if err := flush(); err != nil && firstErr == nil {
				firstErr = err
			}
		}
	}
}

// hashOK sorts out failed hashes: a file that changed while being read is
// retried later, one that vanished is left to the directory diff, one that
// cannot be read is reported.
func (a *Arena) hashOK(r hashResult) bool {
	switch k := realize.KindOf(r.err); {
	case r.err == nil:
		return true
	case k == realize.Changed:
		a.retryLater(r.job.path)
	case k == realize.NotExist:
	case errors.Is(r.err, context.Canceled):
	default:
		a.skip(r.job.path, r.err)
	}
	return false
}

// racyWindow: a file modified this recently before it was hashed may be
// rewritten again within the same timestamp tick without its stat changing
// ("racily clean", as git calls it). Its recorded ctime is poisoned so the
// next look at it — a watcher event or a rescan — hashes it again instead
// of trusting the stat.
const racyWindow = 3 * time.Second

// commitHashed records a batch of hashed files in one transaction. A file
// whose content and metadata turn out unchanged (a touch that kept mtime,
// a racy recheck) only gets its stat refreshed: nothing is recorded twice.
func (a *Arena) commitHashed(batch []hashResult) error {
	// Workers finish in any order; the log should not depend on it.
	sort.Slice(batch, func(i, j int) bool { return batch[i].job.path < batch[j].job.path })
	now := a.clock.Now().UnixNano()
	return a.update(func(tx *bolt.Tx, ix *Index) error {
		ps := make([]pending, 0, len(batch))
		for _, r := range batch {
			if err := ix.PutBlob(r.hashed.Blob, r.hashed.Size, r.hashed.Blocks); err != nil {
				return err
			}
			cur, err := ix.Get(r.job.path)
			if err != nil {
				return err
			}
			st := r.job.stat
			if now-st.MTime < int64(racyWindow) {
				st.CTime = -1
			}
			m := realize.Meta{Kind: realize.KindFile, Size: r.hashed.Size, MTime: st.MTime,
				Exec: isExec(st.Mode), Blob: r.hashed.Blob}
			rec := &Record{Meta: m, Stat: st}
			if live(cur) && cur.Meta == m {
				// Only the stat changes: the version and any conflict
				// frontier stay as they were.
				keep := *cur
				ps = append(ps, pending{path: r.job.path, rec: rec, fix: func(_ *realize.Entry, r *Record) {
					r.Version, r.Origin, r.Own, r.Others = keep.Version, keep.Origin, keep.Own, keep.Others
				}})
				continue
			}
			op := realize.OpAdd
			if live(cur) {
				op = realize.OpReplace
			}
			ps = append(ps, pending{entry: &realize.Entry{Op: op, Path: r.job.path, Meta: m, Version: versionOf(cur)},
				path: r.job.path, rec: rec, fix: setVersion})
			a.status.unskip(string(r.job.path)) // readable again
		}
		return a.commitIn(tx, ix, ps, nil)
	})
}
