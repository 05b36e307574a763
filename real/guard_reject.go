package real

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"sort"

	"github.com/realizefs/realize"
	bolt "go.etcd.io/bbolt"
)

// Refusing held deletions: the way back after an accidental `rm -rf`.
// Nothing was recorded, so the household still has every file: each held
// path is put back as it was before the deletion, where the bytes allow.
//
//   - a directory or symlink is made again on disk (its record is known);
//   - a real file whose content another peer holds becomes an unreal file
//     (an OpUnrealize entry tells the others this peer no longer holds
//     it): listed in the mount, fetched on read or by `realize pin`;
//   - an unreal file removed through the mount or hidden by an overlay
//     whiteout is simply shown again (the whiteout removed);
//   - a real file no other peer holds cannot come back from anywhere: it
//     stays held (approve records its deletion; putting the file back ends
//     the hold).
//
// It is no way back from an unmounted disk: remount it instead (refusing
// would make every file unreal and fill the mount point with directories).

// Kept is a held deletion Reject could not undo, and why.
type Kept struct {
	Path   realize.Path
	Reason string
}

// ErrNoOtherCopy: a held deletion of a file no other peer holds.
var ErrNoOtherCopy = errors.New("no other peer holds this version; only putting the file back restores it")

// Reject undoes the deletions the arena holds (see above). allow decides
// whether a real file may become unreal (another peer holds its bytes; the
// same rule as unpin). It reports how many paths were put back and those
// that stay held.
func (a *Arena) Reject(ctx context.Context, allow func(*Record) error) (restored int64, kept []Kept, err error) {
	a.lockScan()
	defer a.scanMu.Unlock()
	paths, err := a.heldForReject(ctx)
	if err != nil {
		return 0, nil, err
	}
	var ps []pending
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return restored, kept, err
		}
		pd, why, err := a.restore(p, allow)
		switch {
		case err != nil:
			return restored, kept, err
		case why != "":
			kept = append(kept, Kept{Path: p, Reason: why})
			continue
		case pd != nil:
			ps = append(ps, *pd)
		}
		restored++
	}
	if err := a.commit(ps); err != nil {
		return restored, kept, err
	}
	if err := a.scanAllLocked(ctx); err != nil {
		return restored, kept, err
	}
	a.logger.Info("held deletions refused: files put back", "restored", restored, "kept", len(kept))
	return restored, kept, nil
}

// heldForReject returns the held paths, parents first, after making sure a
// full scan found them (a hold loaded at start has none until then). It
// forgets the held removals of unreal files through the mount: those are
// undone by forgetting them.
func (a *Arena) heldForReject(ctx context.Context) ([]realize.Path, error) {
	g := &a.guard
	g.mu.Lock()
	hold, scanned := g.hold, g.scanned
	g.mu.Unlock()
	if hold == nil {
		return nil, &realize.Error{Op: "reject", Kind: realize.NotExist, Arena: a.name, Err: ErrNothingHeld}
	}
	if !scanned {
		if err := a.scanAllLocked(ctx); err != nil {
			return nil, err
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.hold == nil {
		return nil, &realize.Error{Op: "reject", Kind: realize.NotExist, Arena: a.name, Err: ErrNothingHeld}
	}
	paths := make([]realize.Path, 0, len(g.held))
	for p := range g.held {
		paths = append(paths, p)
	}
	sort.Slice(paths, func(i, j int) bool { return paths[i] < paths[j] })
	if len(g.unreal) > 0 {
		g.unreal = nil
		err := a.db.Update(func(tx *bolt.Tx) error {
			ix, err := OpenIndex(tx, a.name)
			if err != nil {
				return err
			}
			return dropHeldUnreal(ix)
		})
		if err != nil {
			return nil, err
		}
	}
	return paths, nil
}

// restore puts one held path back. It returns the entry to record (a real
// file made unreal), or why the path stays held.
func (a *Arena) restore(p realize.Path, allow func(*Record) error) (*pending, string, error) {
	rec, err := a.record0(p)
	if err != nil || !live(rec) {
		return nil, "", err
	}
	abs := a.abs(p)
	if info, err := os.Lstat(abs); err == nil && isWhiteout(info) {
		if err := os.Remove(abs); err != nil {
			return nil, "", a.placeErr(p, realize.IO, err)
		}
	} else if err == nil {
		return nil, "", nil // something is there again: the scan sees it
	}
	if rec.IsReal() {
		if err := allow(rec); err != nil {
			return nil, ErrNoOtherCopy.Error(), nil
		}
	}
	if err := a.safeParents(p); err != nil {
		return nil, "", err
	}
	switch {
	case rec.Meta.Kind == realize.KindDir:
		if err := os.Mkdir(abs, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, "", a.placeErr(p, realize.IO, err)
		}
	case rec.Meta.Kind == realize.KindSymlink:
		if err := os.Symlink(rec.Meta.Target, abs); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, "", a.placeErr(p, realize.IO, err)
		}
	case rec.IsReal():
		return a.unrealized(p, rec), "", nil
	}
	return nil, "", nil
}

// unrealized is the entry and record that turn a real file whose bytes
// are gone from here into an unreal one (as unpin does, without bytes to
// move).
func (a *Arena) unrealized(p realize.Path, rec *Record) *pending {
	next := *rec
	next.Unreal, next.Stat = true, Stat{}
	e := &realize.Entry{Op: realize.OpUnrealize, Path: p, Meta: rec.Meta, Version: rec.Version, Origin: rec.Origin, Unreal: true}
	if e.Origin.IsZero() {
		e.Origin = a.self
	}
	return &pending{entry: e, path: p, rec: &next, fix: func(*realize.Entry, *Record) {}}
}
