package real

import (
	"context"

	"github.com/realizefs/realize"
	bolt "go.etcd.io/bbolt"
)

// PlaceRecords is Place for many distinct paths whose changes move no
// bytes: a file recorded unreal where nothing is on disk, or a path whose
// disk already holds the result (Keep). Each path is decided as Place
// decides it, under one hold of the arena's lock, and those changes are
// committed together: one transaction, one fsync, one signed head for the
// lot, where Place pays each per path — what makes a new unpinned peer
// list a million files in minutes rather than an hour.
//
// decide(i, local) decides paths[i]. A path whose change needs more (bytes
// to fetch, a removal, a directory to create) or whose check fails is not
// placed: its index is returned, for the caller to Place alone, which then
// decides again and reports any error with the usual detail.
func (a *Arena) PlaceRecords(ctx context.Context, paths []realize.Path, decide func(i int, local []realize.Alternative) (*Change, error)) ([]int, error) {
	a.lockScan()
	defer a.scanMu.Unlock()
	var rest []int
	if a.heldEmpty() {
		for i := range paths {
			rest = append(rest, i) // Place says why nothing lands (Busy)
		}
		return rest, nil
	}
	var todo []*placed
	for i, path := range paths {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		pr, ok := a.decideRecord(ctx, path, func(local []realize.Alternative) (*Change, error) { return decide(i, local) })
		switch {
		case !ok:
			rest = append(rest, i)
		case pr.ch != nil:
			todo = append(todo, &placed{path: pr.path, ch: pr.ch, st: pr.st, h: pr.h})
		}
	}
	if len(todo) == 0 {
		return rest, nil
	}
	if err := a.update(func(tx *bolt.Tx, ix *Index) error { return a.commitPlacedIn(tx, ix, todo) }); err != nil {
		return rest, err
	}
	for _, it := range todo {
		if err := a.afterCommit(it); err != nil {
			return rest, err
		}
	}
	return rest, nil
}

// placedRecord is one decided change waiting for its commit.
type placedRecord struct {
	path realize.Path
	ch   *Change
	st   Stat
	h    Hashed
}

// decideRecord decides one path under the arena's lock (held by the
// caller) and checks that its change moves no bytes. ok false leaves the
// path to Place; ok with a nil change means there is nothing to do.
func (a *Arena) decideRecord(ctx context.Context, path realize.Path, decide Decider) (placedRecord, bool) {
	pr := placedRecord{path: path}
	if path.IsRoot() || a.ignored(path, false) || a.ignored(path, true) {
		return pr, false
	}
	local, ch, err := a.decideIn(ctx, path, decide)
	if err != nil {
		return pr, false
	}
	if ch == nil {
		return pr, true
	}
	switch {
	case ch.Keep:
		if local == nil || a.unchanged(path, local) != nil {
			return pr, false
		}
		ch.Unreal, pr.st = local.IsUnreal(), local.Stat
	case ch.Unreal:
		if local.IsReal() || live(local) && local.Meta.Kind != realize.KindFile || a.unchanged(path, local) != nil {
			return pr, false
		}
	default:
		return pr, false
	}
	pr.ch = ch
	return pr, true
}
