package real

import (
	"context"
	"sort"
	"time"

	"github.com/realizefs/realize"
	bolt "go.etcd.io/bbolt"
)

// Settling (docs/decisions/0017-delete-guard.md). A large `rm -rf` reaches
// the indexer as many watcher batches (one per second at most) and the
// mount's removals of unreal files one by one; judged batch by batch, the
// first batches of a mass deletion would pass under the share before the
// guard saw the whole. So, when the arena has a settle time, deletions
// that could add up to a hold (mustSettle) are not recorded at once: they
// wait until no new deletion was found for that long (or settleMax after
// the first), then the directories that held them are compared again and
// whatever is gone there is judged as one batch — recorded, or held. Nothing else waits: new and edited files are
// recorded as usual. A deletion waiting to settle is treated like a held
// one (the mount shows it gone; a remote edit may land on its path); a
// crash meanwhile loses nothing, since the disk (or, for unreal files, the
// stored removal) still says what is gone.

// settleMax bounds how long deletions wait while more keep coming.
const settleMax = 15 * time.Second

// mustSettle tells whether n deletions found now wait to settle. Fewer
// than GuardMinFiles, with those waiting and those recorded lately, can
// never be held: they are recorded at once, so everyday deletions reach
// the other peers without delay. Called with g.mu held.
func (a *Arena) mustSettle(n int64, now time.Time) bool {
	g := &a.guard
	return a.settle > 0 && (len(g.pending) > 0 || n+g.recentSum(now) >= GuardMinFiles)
}

// SettlingDeletes counts the deletions waiting to settle.
func (a *Arena) SettlingDeletes() int64 {
	a.guard.mu.Lock()
	defer a.guard.mu.Unlock()
	return int64(len(a.guard.pending))
}

// pend withholds a plan's deletions until they settle. Called with g.mu
// held.
func (a *Arena) pend(p *plan, removed, rmdirs, keepR, keepD []gone, now time.Time) {
	g := &a.guard
	p.removed, p.rmdirs = keepR, keepD
	for _, d := range removed {
		g.addPending(d.path, d.rec.Meta.Kind, now)
	}
	for _, d := range rmdirs {
		g.addPending(d.path, realize.KindDir, now)
	}
	p.overlay.opaque = nil // the marks say what is gone until it is judged
}

func (g *guardState) addPending(path realize.Path, kind realize.Kind, now time.Time) {
	if g.pending == nil {
		g.pending = map[realize.Path]realize.Kind{}
		g.pendingFirst = now
	}
	g.pending[path] = kind
	g.pendingLast = now
}

// settleDue tells whether deletions waiting to settle are to be judged.
func (a *Arena) settleDue(now time.Time) bool {
	a.guard.mu.Lock()
	defer a.guard.mu.Unlock()
	g := &a.guard
	return len(g.pending) > 0 && (now.Sub(g.pendingLast) >= a.settle || now.Sub(g.pendingFirst) >= settleMax)
}

// Settle judges the deletions waiting to settle now: the directories that
// held them are compared with the index again and what is gone there is
// recorded, or held if it is too much.
func (a *Arena) Settle(ctx context.Context) error {
	a.lockScan()
	defer a.scanMu.Unlock()
	g := &a.guard
	g.mu.Lock()
	pending := g.pending
	g.pending = nil
	g.mu.Unlock()
	if len(pending) == 0 {
		return nil
	}
	dirs := map[realize.Path]bool{}
	for p := range pending {
		dirs[p.Dir()] = true
	}
	sorted := make([]realize.Path, 0, len(dirs))
	for d := range dirs {
		sorted = append(sorted, d)
	}
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	p := &plan{judge: true}
	for _, d := range sorted {
		// A directory gone as a whole is found by its parent's diff.
		if d.IsRoot() || !a.ignored(d, true) && a.isRealDir(d) {
			if err := a.diffDir(ctx, d, false, p); err != nil {
				return err
			}
		}
	}
	return a.record(ctx, p)
}

// forgetRecordedUnreal drops the stored removals of unreal files once
// their removal is recorded.
func (a *Arena) forgetRecordedUnreal(p *plan) {
	g := &a.guard
	g.mu.Lock()
	defer g.mu.Unlock()
	var done []realize.Path
	for _, d := range p.removed {
		if _, ok := g.unreal[d.path]; ok {
			done = append(done, d.path)
			delete(g.unreal, d.path)
		}
	}
	if len(done) == 0 {
		return
	}
	err := a.db.Update(func(tx *bolt.Tx) error {
		ix, err := OpenIndex(tx, a.name)
		if err != nil {
			return err
		}
		b := ix.ab.Bucket(bucketHeldUnreal)
		for _, q := range done {
			if b == nil {
				break
			}
			if err := b.Delete(PathKey(q)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		// Harmless: a stored removal of a path whose record is a
		// tombstone is never taken for a deletion again.
		a.logger.Warn("recorded removals not forgotten", "err", err)
	}
}
