package real

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/realizefs/realize"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// The delete guard (docs/decisions/0017-delete-guard.md). Deleting most of
// an arena at once is far more often an accident — an unmounted disk, a
// wrong `rm -rf`, a sync tool gone mad — than an intent, and a recorded
// deletion propagates to every peer, which then deletes its copies too.
// So when the deletions a scan finds would remove more than the arena's
// guard share of its files, none of them is recorded: the arena is put on
// hold. While it holds, every deletion the scanner finds waits with the
// others, nothing else is held back (new and edited files are recorded as
// usual), and `realize approve` records them. Files that come back (a disk
// mounted again, files restored) leave the hold by themselves; when none is
// missing any more the hold ends.
//
// The evidence of a held deletion is the disk itself (a file missing, an
// overlay whiteout): what is held is re-derived by every full scan, and
// only the fact that the arena holds is stored, so it survives a restart
// even when the share was crossed by several batches together. Unreal
// files removed through the mount leave nothing on disk: their removal is
// stored instead (bucketHeldUnreal). Before they are judged, deletions
// that could add up to a hold wait a moment for more (guard_settle.go);
// undoing held deletions is in guard_reject.go.

// Guard defaults and bounds.
const (
	// DefaultDeleteGuard is the share (percent of an arena's files and
	// symlinks) one batch may delete without approval.
	DefaultDeleteGuard = 50.0
	// GuardMinFiles: fewer deletions than this are never held, so a small
	// arena can be emptied without ceremony.
	GuardMinFiles = 10
	// guardWindow: deletions recorded this recently count toward the
	// share together with the next batch. A long `rm -rf` reaches the
	// scanner as several watcher batches (at most a second each), and
	// each alone may stay under the share.
	guardWindow = time.Minute
	// holdSample is how many held paths status names.
	holdSample = 10
	// holdRescan: while holding, changes are looked at by full scans at
	// most this often.
	holdRescan = 2 * time.Second
)

// Hold reasons.
const (
	HoldShare = "share" // more than the guard share of the arena's files
	HoldEmpty = "empty" // the arena's directory is empty (unmounted disk?)
)

// Hold is an arena's deletions waiting for approval, as status shows it.
type Hold struct {
	_       struct{} `cbor:",toarray"`
	Since   int64    // Unix ns: when the hold began
	Reason  string   // HoldShare or HoldEmpty
	Files   int64    // files and symlinks whose deletion is held
	Dirs    int64    // directories whose deletion is held
	Percent float64  // Files as a share of the arena's files, in percent
	Sample  []realize.Path
}

// SinceTime returns when the hold began.
func (h *Hold) SinceTime() time.Time { return time.Unix(0, h.Since) }

var (
	keyHold = []byte("hold")
	// bucketHeldUnreal holds unreal files removed through the mount and
	// not recorded yet (settling or held): path key -> the record's
	// version (CBOR). Nothing on disk says they are gone, so this is
	// their evidence.
	bucketHeldUnreal = []byte("h")
)

// ReadHold returns an arena's hold, or nil when it holds nothing.
func ReadHold(tx *bolt.Tx, arena realize.ArenaName) (*Hold, error) {
	root := tx.Bucket(bucketIndex)
	if root == nil {
		return nil, nil
	}
	ab := root.Bucket([]byte(arena))
	if ab == nil {
		return nil, nil
	}
	raw := ab.Get(keyHold)
	if raw == nil {
		return nil, nil
	}
	var h Hold
	if err := cbor.Unmarshal(raw, &h); err != nil {
		return nil, &realize.Error{Op: "read hold", Kind: realize.Corrupt, Arena: arena, Err: err}
	}
	return &h, nil
}

func writeHold(tx *bolt.Tx, arena realize.ArenaName, h *Hold) error {
	ix, err := OpenIndex(tx, arena)
	if err != nil {
		return err
	}
	if h == nil {
		if err := dropHeldUnreal(ix); err != nil {
			return err
		}
		return ix.ab.Delete(keyHold)
	}
	raw, err := cbor.Marshal(h)
	if err != nil {
		return err
	}
	return ix.ab.Put(keyHold, raw)
}

// dropHeldUnreal forgets every stored removal of an unreal file.
func dropHeldUnreal(ix *Index) error {
	if err := ix.ab.DeleteBucket(bucketHeldUnreal); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
		return err
	}
	return nil
}

// guardState is an arena's guard: the hold, if any, and the deletions
// recorded lately.
type guardState struct {
	mu   sync.Mutex
	hold *Hold // nil: not holding
	// held are the paths whose deletion is withheld, as the scans since
	// the last full one found them (exact after each full scan).
	held map[realize.Path]realize.Kind
	// scanned: held was filled by a full scan since the daemon started
	// (a hold loaded from the database has no paths until then).
	scanned bool
	// approved are the held paths Approve is recording.
	approved map[realize.Path]bool
	// recorded counts what the approving scan recorded.
	recordedFiles, recordedDirs int64
	recent                      []recentDeletes
	// unreal are unreal files removed through the mount and not recorded
	// yet (settling or held), with the version removed (bucketHeldUnreal).
	// A later version of the path (an edit elsewhere) is not removed: an
	// edit wins.
	unreal map[realize.Path]realize.VersionVector
	// pending are deletions settling (guard_settle.go), found between
	// pendingFirst and pendingLast.
	pending                   map[realize.Path]realize.Kind
	pendingFirst, pendingLast time.Time
	// rescan: something changed while holding; lastFull: when the last
	// full scan ended (holdRescanDue).
	rescan   atomic.Bool
	lastFull atomic.Int64
}

type recentDeletes struct {
	at time.Time
	n  int64
}

// loadHold restores a hold stored by an earlier run.
func (a *Arena) loadHold() error {
	return a.db.View(func(tx *bolt.Tx) error {
		h, err := ReadHold(tx, a.name)
		if err != nil {
			return err
		}
		a.guard.hold = h
		var b *bolt.Bucket
		if root := tx.Bucket(bucketIndex); root != nil {
			if ab := root.Bucket([]byte(a.name)); ab != nil {
				b = ab.Bucket(bucketHeldUnreal)
			}
		}
		if b == nil {
			return nil
		}
		a.guard.unreal = map[realize.Path]realize.VersionVector{}
		return b.ForEach(func(k, v []byte) error {
			var vv realize.VersionVector
			if err := cbor.Unmarshal(v, &vv); err != nil {
				return &realize.Error{Op: "read hold", Kind: realize.Corrupt, Arena: a.name, Path: string(KeyPath(k)), Err: err}
			}
			a.guard.unreal[KeyPath(k)] = vv
			return nil
		})
	})
}

// unrealGone tells whether the unreal file at path was removed through the
// mount and the removal not recorded yet: for the scanner, it is gone.
func (a *Arena) unrealGone(path realize.Path, rec *Record) bool {
	a.guard.mu.Lock()
	defer a.guard.mu.Unlock()
	v, ok := a.guard.unreal[path]
	return ok && v.Compare(rec.Version) == realize.Equal
}

// guardUnrealRemoval decides on the removal of an unreal file through the
// mount, which no scan sees: it counts like a scan's deletion. kept
// reports that it is not to be recorded now (held, or settling): its
// evidence is then stored, and the mount shows it gone.
func (a *Arena) guardUnrealRemoval(path realize.Path, rec *Record) (kept bool, err error) {
	g := &a.guard
	g.mu.Lock()
	defer g.mu.Unlock()
	now := a.clock.Now()
	if g.hold == nil && !a.mustSettle(1, now) {
		reason, pct, err := a.trips(1, 0, now)
		if err != nil || reason == "" {
			g.note(now, 1)
			return false, err
		}
		g.hold = &Hold{Since: now.UnixNano(), Reason: reason, Percent: pct}
		g.held, g.scanned = nil, false
		a.logger.Warn("deletions held for approval: not recorded nor sent to other peers; release with `realize approve`",
			"path", string(path), "percent", pct, "reason", reason)
	}
	if err := a.storeUnrealGone(path, rec); err != nil {
		return false, err
	}
	if g.hold == nil {
		g.addPending(path, realize.KindFile, now)
		return true, nil
	}
	if g.held == nil {
		g.held = map[realize.Path]realize.Kind{}
	}
	g.held[path] = realize.KindFile
	return true, a.updateHold(false)
}

// storeUnrealGone stores the evidence of an unreal file removed through
// the mount (bucketHeldUnreal). Called with g.mu held.
func (a *Arena) storeUnrealGone(path realize.Path, rec *Record) error {
	raw, err := cbor.Marshal(rec.Version)
	if err != nil {
		return err
	}
	err = a.db.Update(func(tx *bolt.Tx) error {
		ix, err := OpenIndex(tx, a.name)
		if err != nil {
			return err
		}
		b, err := ix.ab.CreateBucketIfNotExists(bucketHeldUnreal)
		if err != nil {
			return err
		}
		return b.Put(PathKey(path), raw)
	})
	if err != nil {
		return err
	}
	if a.guard.unreal == nil {
		a.guard.unreal = map[realize.Path]realize.VersionVector{}
	}
	a.guard.unreal[path] = rec.Version
	return nil
}

// pruneUnreal forgets held removals of unreal files that a full scan no
// longer holds (recorded, edited elsewhere, a file put there). Called
// with g.mu held, inside tx.
func (a *Arena) pruneUnreal(tx *bolt.Tx) error {
	g := &a.guard
	ix, err := OpenIndex(tx, a.name)
	if err != nil {
		return err
	}
	ab := ix.ab
	for p := range g.unreal {
		if _, ok := g.held[p]; ok {
			continue
		}
		delete(g.unreal, p)
		if b := ab.Bucket(bucketHeldUnreal); b != nil {
			if err := b.Delete(PathKey(p)); err != nil {
				return err
			}
		}
	}
	return nil
}

// Hold returns the arena's hold, or nil.
func (a *Arena) Hold() *Hold {
	a.guard.mu.Lock()
	defer a.guard.mu.Unlock()
	if a.guard.hold == nil {
		return nil
	}
	h := *a.guard.hold
	return &h
}

// holdRescanDue tells whether the watcher reported changes while holding
// and the last full scan is at least holdRescan old.
func (a *Arena) holdRescanDue(now time.Time) bool {
	g := &a.guard
	if !g.rescan.Load() || now.Sub(time.Unix(0, g.lastFull.Load())) < holdRescan {
		return false
	}
	g.rescan.Store(false)
	return true
}

// ErrEmptyHold: the arena holds deletions because its directory is empty;
// nothing is placed in it meanwhile.
var ErrEmptyHold = errors.New("the arena's directory is empty (a disk not mounted?): nothing is placed in it until it is back or its deletions are approved")

// heldEmpty tells whether the arena holds deletions because its directory
// was found empty.
func (a *Arena) heldEmpty() bool {
	a.guard.mu.Lock()
	defer a.guard.mu.Unlock()
	return a.guard.hold != nil && a.guard.hold.Reason == HoldEmpty
}

// holding tells whether the arena holds deletions.
func (a *Arena) holding() bool {
	a.guard.mu.Lock()
	defer a.guard.mu.Unlock()
	return a.guard.hold != nil
}

// HeldDeletion tells whether path's deletion is held: it is gone here
// though its record is live. The mount shows it gone.
func (a *Arena) HeldDeletion(path realize.Path) bool { return a.heldDeletion(path) }

// heldDeletion tells whether path's deletion is held: it is missing here
// though its record is live, and that is known, not a change to record.
func (a *Arena) heldDeletion(path realize.Path) bool {
	a.guard.mu.Lock()
	defer a.guard.mu.Unlock()
	if _, ok := a.guard.pending[path]; ok {
		return true
	}
	_, ok := a.guard.held[path]
	return ok && a.guard.hold != nil
}

// deleteGuard returns the share in force, in percent (0: off).
func (a *Arena) deleteGuard() float64 {
	if a.guardShare == nil {
		return DefaultDeleteGuard
	}
	return a.guardShare()
}

// guardPlan withholds the plan's deletions when they must wait for
// approval. It runs before the plan is committed, after renames are paired
// (a move is not a deletion). A path replaced by another kind of thing is
// not a deletion either and always goes through.
func (a *Arena) guardPlan(p *plan) error {
	g := &a.guard
	g.mu.Lock()
	defer g.mu.Unlock()
	removed, rmdirs, keepR, keepD := a.splitDeletions(p)
	files, dirs := int64(len(removed)), int64(len(rmdirs))
	now := a.clock.Now()
	if g.hold == nil && !p.judge && files+dirs > 0 && (p.incidental && a.settle > 0 || a.mustSettle(files+dirs, now)) {
		a.pend(p, removed, rmdirs, keepR, keepD, now)
		return nil
	}
	if g.hold == nil && files+dirs > 0 {
		reason, pct, err := a.trips(files, dirs, now)
		if err != nil {
			return err
		}
		if reason != "" {
			g.hold = &Hold{Since: now.UnixNano(), Reason: reason, Percent: pct}
			g.held, g.scanned = nil, false
			a.logger.Warn("deletions held for approval: not recorded nor sent to other peers; release with `realize approve`",
				"files", files, "dirs", dirs, "percent", pct, "reason", reason)
		}
	}
	if g.hold == nil {
		g.note(now, files)
		return nil
	}
	// Holding: record what is approved, withhold the rest.
	p.removed, p.rmdirs = keepR, keepD
	if p.full || g.held == nil {
		g.held = map[realize.Path]realize.Kind{}
	}
	if p.full {
		g.scanned = true
	}
	for _, d := range removed {
		a.holdOrApprove(p, d, false)
	}
	for _, d := range rmdirs {
		a.holdOrApprove(p, d, true)
	}
	// Overlay marks below held deletions stay: they are what says the
	// paths are gone (whiteouts are kept while their record is live).
	p.overlay.opaque = nil
	return a.updateHold(p.full)
}

// holdOrApprove records an approved deletion, or withholds it.
func (a *Arena) holdOrApprove(p *plan, d gone, dir bool) {
	g := &a.guard
	switch {
	case g.approved[d.path] && dir:
		p.rmdirs = append(p.rmdirs, d)
		g.recordedDirs++
	case g.approved[d.path]:
		p.removed = append(p.removed, d)
		g.recordedFiles++
	default:
		g.held[d.path] = d.rec.Meta.Kind
	}
}

// splitDeletions separates the plan's deletions (files and symlinks, and
// directories) from removals that make way for something else at the same
// path, which are kept in the plan.
func (a *Arena) splitDeletions(p *plan) (removed, rmdirs, keepR, keepD []gone) {
	retyped := func(q realize.Path) bool {
		for r := range p.retyped {
			if q.HasPrefix(r) {
				return true
			}
		}
		return false
	}
	for _, g := range p.removed {
		if retyped(g.path) {
			keepR = append(keepR, g)
		} else {
			removed = append(removed, g)
		}
	}
	for _, g := range p.rmdirs {
		if retyped(g.path) {
			keepD = append(keepD, g)
		} else {
			rmdirs = append(rmdirs, g)
		}
	}
	return removed, rmdirs, keepR, keepD
}

// trips decides whether deletions start a hold, and why; pct is the share
// of the arena's files they (with those recorded within guardWindow)
// remove.
func (a *Arena) trips(files, dirs int64, now time.Time) (reason string, pct float64, err error) {
	c, err := a.Counts()
	if err != nil {
		return "", 0, err
	}
	recent := a.guard.recentSum(now)
	total, base := files+recent, c.Files+c.Symlinks+recent
	if base > 0 {
		pct = float64(total) * 100 / float64(base)
	}
	if files+dirs >= GuardMinFiles {
		// An empty arena directory is far more often an unmounted disk
		// or network share than a person's intent: held whatever the share.
		if ents, err := os.ReadDir(a.root); err == nil && len(ents) == 0 {
			return HoldEmpty, pct, nil
		}
	}
	share := a.deleteGuard()
	if share > 0 && total >= GuardMinFiles && pct > share {
		return HoldShare, pct, nil
	}
	return "", pct, nil
}

// note remembers recorded deletions for guardWindow.
func (g *guardState) note(now time.Time, n int64) {
	if n > 0 {
		g.recent = append(g.recent, recentDeletes{at: now, n: n})
	}
}

func (g *guardState) recentSum(now time.Time) int64 {
	keep := g.recent[:0]
	var sum int64
	for _, r := range g.recent {
		if now.Sub(r.at) < guardWindow {
			keep = append(keep, r)
			sum += r.n
		}
	}
	g.recent = keep
	return sum
}

// updateHold stores the hold as the held paths now say, or ends it when a
// full scan found nothing missing any more. Called with g.mu held.
func (a *Arena) updateHold(full bool) error {
	g := &a.guard
	next := *g.hold
	next.Files, next.Dirs = 0, 0
	for _, k := range g.held {
		if k == realize.KindDir {
			next.Dirs++
		} else {
			next.Files++
		}
	}
	next.Sample = sampleHeld(g.held)
	if full && len(g.held) == 0 {
		if g.approved == nil {
			a.logger.Info("held deletions gone: the files are back; nothing was recorded")
		}
		g.hold, g.held, g.unreal = nil, nil, nil
		return a.db.Update(func(tx *bolt.Tx) error { return writeHold(tx, a.name, nil) })
	}
	if c, err := a.Counts(); err == nil && c.Files+c.Symlinks > 0 {
		next.Percent = float64(next.Files) * 100 / float64(c.Files+c.Symlinks)
	}
	stale := 0
	if full {
		for p := range g.unreal {
			if _, ok := g.held[p]; !ok {
				stale++
			}
		}
	}
	if g.scanned && stale == 0 && sameHold(&next, g.hold) {
		return nil
	}
	g.hold = &next
	return a.db.Update(func(tx *bolt.Tx) error {
		if full {
			if err := a.pruneUnreal(tx); err != nil {
				return err
			}
		}
		return writeHold(tx, a.name, &next)
	})
}

func sameHold(a, b *Hold) bool {
	if a.Files != b.Files || a.Dirs != b.Dirs || len(a.Sample) != len(b.Sample) {
		return false
	}
	for i := range a.Sample {
		if a.Sample[i] != b.Sample[i] {
			return false
		}
	}
	return true
}

// sampleHeld names the topmost held paths (a held directory stands for
// everything held below it), sorted, at most holdSample.
func sampleHeld(held map[realize.Path]realize.Kind) []realize.Path {
	var tops []realize.Path
	for p := range held {
		top := true
		for d := p.Dir(); !d.IsRoot(); d = d.Dir() {
			if _, ok := held[d]; ok {
				top = false
				break
			}
		}
		if top {
			tops = append(tops, p)
		}
	}
	sort.Slice(tops, func(i, j int) bool { return tops[i] < tops[j] })
	if len(tops) > holdSample {
		tops = tops[:holdSample]
	}
	return tops
}

// ErrNothingHeld: Approve found no deletion waiting.
var ErrNothingHeld = errors.New("no deletions are held")

// Approve records the deletions the arena holds, as the last scan found
// them (a deletion found after that stays held, and shows in status). It
// reports how many files (and symlinks) and directories it recorded.
func (a *Arena) Approve(ctx context.Context) (files, dirs int64, err error) {
	a.lockScan()
	defer a.scanMu.Unlock()
	g := &a.guard
	g.mu.Lock()
	hold, scanned := g.hold, g.scanned
	g.mu.Unlock()
	if hold == nil {
		return 0, 0, &realize.Error{Op: "approve", Kind: realize.NotExist, Arena: a.name, Err: ErrNothingHeld}
	}
	if !scanned {
		// Loaded from the database: find what is held before approving it.
		if err := a.scanAllLocked(ctx); err != nil {
			return 0, 0, err
		}
	}
	g.mu.Lock()
	if g.hold == nil {
		g.mu.Unlock()
		return 0, 0, &realize.Error{Op: "approve", Kind: realize.NotExist, Arena: a.name,
			Err: fmt.Errorf("%w: the missing files came back", ErrNothingHeld)}
	}
	g.approved = make(map[realize.Path]bool, len(g.held))
	for p := range g.held {
		g.approved[p] = true
	}
	g.recordedFiles, g.recordedDirs = 0, 0
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.approved = nil
		g.mu.Unlock()
	}()
	err = a.scanAllLocked(ctx)
	g.mu.Lock()
	files, dirs = g.recordedFiles, g.recordedDirs
	g.mu.Unlock()
	if err == nil {
		a.logger.Info("held deletions approved and recorded", "files", files, "dirs", dirs)
	}
	return files, dirs, err
}
