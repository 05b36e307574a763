package real

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"syscall"

	"github.com/realizefs/realize"
	bolt "go.etcd.io/bbolt"
)

// An unreal file is listed in the index (Record.Unreal) but has no bytes
// in the real directory. The functions here move a path between the two
// states and record local changes to unreal paths, which the scanner cannot
// see (there is nothing on disk to diff).

// Realize makes the unreal file at path real: fill writes its bytes into a
// temporary file (verified block by block, then as a whole), which is
// renamed into place if the path is still unreal and absent on disk. The
// version does not change; the entry (OpRealize) tells other peers this
// one now holds the bytes. Realizing a real file is a no-op.
func (a *Arena) Realize(ctx context.Context, path realize.Path, fill func(ctx context.Context, f *os.File) error) error {
	return a.Place(ctx, path, func(local []realize.Alternative) (*Change, error) {
		rec, err := a.record0(path)
		if err != nil || rec.IsReal() {
			return nil, err
		}
		if !rec.IsUnreal() {
			return nil, &realize.Error{Op: "realize", Kind: realize.NotExist, Arena: a.name, Path: string(path), Err: errors.New("no file here")}
		}
		// The cache does not report landed ranges: Place hashes the file
		// once it is complete.
		f := func(ctx context.Context, f *os.File, _ *Landed) error { return fill(ctx, f) }
		return &Change{Op: realize.OpRealize, Result: rec.Alternative(), Own: rec.Own, Others: rec.Others, Fill: f}, nil
	})
}

// Unrealize turns the real file at path into an unreal one. Any local
// change not yet recorded is recorded first; allow then sees the record and
// may refuse (the last copy in the household must stay). The record and
// its entry (OpUnrealize) are committed before the bytes leave: a crash in
// between leaves a file at an unreal path, which the next scan records as
// an edit — never as a deletion. adopt then moves the file (its absolute
// name) into the cache; if it fails the file is removed, its bytes being
// held elsewhere by allow's decision.
func (a *Arena) Unrealize(ctx context.Context, path realize.Path, allow func(*Record) error, adopt func(abs string, rec *Record, blocks realize.BlockMap) error) error {
	a.lockScan()
	defer a.scanMu.Unlock()
	if err := a.recordPath(ctx, path); err != nil {
		return err
	}
	rec, err := a.record0(path)
	if err != nil {
		return err
	}
	if rec.IsUnreal() {
		return nil
	}
	if !rec.IsReal() {
		return &realize.Error{Op: "unrealize", Kind: realize.NotExist, Arena: a.name, Path: string(path), Err: errors.New("no file here")}
	}
	if err := allow(rec); err != nil {
		return err
	}
	if err := a.unchanged(path, rec); err != nil {
		return err
	}
	abs := a.abs(path)
	// A file open anywhere (through an overlay mount, an open of the merged
	// file opens this very file) stays real: moving it would take the
	// writer's later bytes into the cache, out of the history. The lease
	// also makes any open during the move wait, and tells us about it.
	lease, err := takeUnpinLease(abs)
	if err != nil {
		if errors.Is(err, errOpenElsewhere) {
			return &realize.Error{Op: "unpin", Kind: realize.Busy, Arena: a.name, Path: string(path), Err: err}
		}
		return a.placeErr(path, realize.IO, err)
	}
	defer lease.release()
	// The block map goes with the bytes; the index drops it with the
	// last real reference.
	blocks, err := a.BlockMap(rec.Meta.Blob)
	if err != nil {
		return err
	}
	next := *rec
	next.Unreal, next.Stat = true, Stat{}
	e := &realize.Entry{Op: realize.OpUnrealize, Path: path, Meta: rec.Meta, Version: rec.Version, Origin: rec.Origin, Unreal: true}
	if e.Origin.IsZero() {
		e.Origin = a.self
	}
	if lease.broken() {
		return &realize.Error{Op: "unpin", Kind: realize.Busy, Arena: a.name, Path: string(path), Err: errOpenElsewhere}
	}
	if err := a.commit([]pending{{entry: e, path: path, rec: &next, fix: func(*realize.Entry, *Record) {}}}); err != nil {
		return err
	}
	busy := func() error {
		// Opened while the record was committed: the bytes stay where the
		// opener finds them, and the next scan records the file at the
		// now unreal path as an edit (real again, nothing lost).
		a.retryLater(path)
		return &realize.Error{Op: "unpin", Kind: realize.Busy, Arena: a.name, Path: string(path), Err: errOpenElsewhere}
	}
	if lease.broken() {
		return busy()
	}
	held, err := a.unlinkThroughMount(a.via(), path)
	if err != nil {
		a.retryLater(path)
		return a.placeErr(path, realize.IO, err)
	}
	if lease.broken() {
		// The opener holds the inode the mount showed: put it back.
		if err := os.Rename(held, abs); err != nil {
			a.logger.Warn("unpin: file opened while unpinned not put back", "path", path, "err", err)
		}
		return busy()
	}
	if err := adopt(held, rec, blocks); err != nil {
		a.logger.Warn("unpin: could not move the file into the cache; removing it", "path", path, "err", err)
		if err := os.Remove(held); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return a.placeErr(path, realize.IO, err)
		}
	}
	return nil
}

// unlinkThroughMount takes a file being unpinned out of an overlay
// mount's sight: a second name beside it (a reserved one) keeps the inode
// for the cache, and the file is removed through the mount, so that the
// kernel forgets its dentry rather than go on reaching the bytes in the
// cache — and writing there, out of the history. It returns the name that
// now holds the bytes: path's own when no overlay is mounted.
func (a *Arena) unlinkThroughMount(v via, path realize.Path) (string, error) {
	abs := a.abs(path)
	if v.mnt == "" {
		return abs, nil
	}
	held := a.tempName(path)
	if err := os.Link(abs, held); err != nil {
		v.fellBack("link", path, err)
		return abs, nil
	}
	if err := v.remove(path); err != nil {
		os.Remove(held)
		return "", err
	}
	a.removeWhiteout(path) // the lower layer shows the unreal file
	return held, nil
}

// recordPath records any unrecorded local change of one file, under the
// arena's lock (held by the caller).
func (a *Arena) recordPath(ctx context.Context, path realize.Path) error {
	if err := a.noSymlinkAbove(path); err != nil {
		return err
	}
	p := &plan{}
	if err := a.checkFile(path, p); err != nil {
		return err
	}
	return a.record(ctx, p)
}

// RemoveUnreal records the local removal of an unreal file (through the
// mount: there is nothing on disk to delete).
func (a *Arena) RemoveUnreal(ctx context.Context, path realize.Path) error {
	a.lockScan()
	defer a.scanMu.Unlock()
	rec, err := a.unrealRecord(path)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(a.abs(path)); err == nil {
		return a.placeErr(path, realize.Changed, ErrLocalChange)
	}
	// Removals through the mount count for the delete guard like a scan's
	// (an `rm -rf` of unreal files arrives here one file at a time).
	if held, err := a.guardUnrealRemoval(path, rec); err != nil || held {
		return err
	}
	return a.commit([]pending{a.removal(gone{path: path, rec: rec}, realize.OpRemove)})
}

// RenameUnreal records the local move of an unreal file to a path where
// nothing is (no bytes move, here or anywhere).
func (a *Arena) RenameUnreal(ctx context.Context, from, to realize.Path) error {
	a.lockScan()
	defer a.scanMu.Unlock()
	rec, err := a.unrealRecord(from)
	if err != nil {
		return err
	}
	if a.ignored(to, false) {
		return &realize.Error{Op: "rename", Kind: realize.Invalid, Arena: a.name, Path: string(to), Err: errors.New("reserved or ignored path")}
	}
	old, err := a.record0(to)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(a.abs(to)); err == nil || live(old) {
		return &realize.Error{Op: "rename", Kind: realize.Exist, Arena: a.name, Path: string(to), Err: errors.New("destination exists")}
	}
	if err := a.safeParents(to); err != nil {
		return err
	}
	p := &plan{renames: []rename{{from: from, to: to, rec: rec, old: old}}}
	ps := a.structural(p)
	// The destination stays unreal: no bytes, no stat.
	ps[0].rec.Unreal, ps[0].rec.Stat = true, Stat{}
	ps[0].entry.Unreal = true
	return a.commit(ps)
}

func (a *Arena) unrealRecord(path realize.Path) (*Record, error) {
	rec, err := a.record0(path)
	if err != nil {
		return nil, err
	}
	if !rec.IsUnreal() {
		return nil, &realize.Error{Op: "record", Kind: realize.NotExist, Arena: a.name, Path: string(path), Err: errors.New("no unreal file here")}
	}
	return rec, nil
}

// UnrealUnder lists the unreal files at or below path (for pinning).
func (a *Arena) UnrealUnder(path realize.Path) ([]realize.Path, error) {
	return a.filesUnder(path, (*Record).IsUnreal)
}

// RealUnder lists the real files at or below path (for unpinning).
func (a *Arena) RealUnder(path realize.Path) ([]realize.Path, error) {
	return a.filesUnder(path, (*Record).IsReal)
}

func (a *Arena) filesUnder(path realize.Path, keep func(*Record) bool) ([]realize.Path, error) {
	var out []realize.Path
	err := a.walkUnder(path, func(p realize.Path, r *Record) error {
		if keep(r) {
			out = append(out, p)
		}
		return nil
	})
	return out, err
}

// CountUnder counts the real and unreal files at or below path, in one
// walk (realize status of a directory).
func (a *Arena) CountUnder(path realize.Path) (real, unreal int64, err error) {
	err = a.walkUnder(path, func(_ realize.Path, r *Record) error {
		switch {
		case r.IsReal():
			real++
		case r.IsUnreal():
			unreal++
		}
		return nil
	})
	return real, unreal, err
}

// errFound stops a walk at the first match.
var errFound = errors.New("found")

// HasUnrealUnder tells whether any unreal file is at or below path,
// stopping at the first one. Held deletions do not count: the mount shows
// them gone.
func (a *Arena) HasUnrealUnder(path realize.Path) (bool, error) {
	err := a.walkUnder(path, func(p realize.Path, r *Record) error {
		if r.IsUnreal() && !a.heldDeletion(p) {
			return errFound
		}
		return nil
	})
	if errors.Is(err, errFound) {
		return true, nil
	}
	return false, err
}

func (a *Arena) walkUnder(path realize.Path, fn func(realize.Path, *Record) error) error {
	return a.db.View(func(tx *bolt.Tx) error {
		ix, err := OpenIndex(tx, a.name)
		if err != nil {
			return err
		}
		return ix.Walk(path, fn)
	})
}

// Lookup returns the index record of path (nil when none).
func (a *Arena) Lookup(path realize.Path) (*Record, error) { return a.record0(path) }

// LookupMany is Lookup for several paths, in one read transaction.
func (a *Arena) LookupMany(paths []realize.Path) ([]*Record, error) {
	out := make([]*Record, len(paths))
	err := a.db.View(func(tx *bolt.Tx) error {
		ix, err := OpenIndex(tx, a.name)
		for i, p := range paths {
			if err != nil {
				return err
			}
			out[i], err = ix.Get(p)
		}
		return err
	})
	return out, err
}

// HasBlob tells whether some real file of the arena is recorded with blob
// (a local source of those bytes, no network needed).
func (a *Arena) HasBlob(blob realize.Hash) bool {
	found := false
	_ = a.db.View(func(tx *bolt.Tx) error {
		ix, err := OpenIndex(tx, a.name)
		if err == nil {
			found = len(ix.PathsOf(blob)) > 0
		}
		return nil
	})
	return found
}

// Children returns the index's records of dir's children, by name.
func (a *Arena) Children(dir realize.Path) (map[string]*Record, error) { return a.children(dir) }

// Conflicts lists the versions kept aside for paths at or below dir.
func (a *Arena) Conflicts(dir realize.Path) ([]Conflict, error) {
	var out []Conflict
	err := a.db.View(func(tx *bolt.Tx) error {
		ix, err := OpenIndex(tx, a.name)
		if err == nil {
			out, err = ix.Conflicts(dir)
		}
		return err
	})
	return out, err
}

// ConflictsAt lists the versions kept aside for exactly path.
func (a *Arena) ConflictsAt(path realize.Path) ([]Conflict, error) {
	var out []Conflict
	err := a.db.View(func(tx *bolt.Tx) error {
		ix, err := OpenIndex(tx, a.name)
		if err == nil {
			out, err = ix.ConflictsAt(path)
		}
		return err
	})
	return out, err
}

// Abs returns the OS path of path in the real directory, having checked
// that no directory above it is a symlink (which could lead out of the
// arena). The last element itself is not followed by callers (Lstat,
// O_NOFOLLOW).
func (a *Arena) Abs(path realize.Path) (string, error) {
	if err := a.noSymlinkAbove(path); err != nil {
		return "", err
	}
	return a.abs(path), nil
}

// IsReserved tells whether path is Realize's own (temporary files, kept
// conflict versions) or ignored: not part of the share.
func (a *Arena) IsReserved(path realize.Path, isDir bool) bool {
	return a.ignored(path, isDir)
}

// RenameDir renames the directory from to to, on disk and in the index, as
// one change: the real files below it are paired by inode as in any scan,
// and the unreal files below it move with it (renames that stay unreal),
// as when an overlay redirect moves a directory. A plain rename on disk
// would leave the unreal files' records behind, and the next scan would
// record them deleted.
func (a *Arena) RenameDir(ctx context.Context, from, to realize.Path) error {
	a.lockScan()
	defer a.scanMu.Unlock()
	fail := func(kind realize.ErrKind, err error) error {
		return &realize.Error{Op: "rename", Kind: kind, Arena: a.name, Path: string(from), Err: err}
	}
	switch {
	case from.IsRoot() || to.IsRoot() || to.HasPrefix(from):
		return fail(realize.Invalid, errors.New("a directory cannot move into itself or to the arena root"))
	case a.ignored(to, true):
		return fail(realize.Invalid, errors.New("reserved or ignored destination"))
	}
	for _, p := range []realize.Path{from, to.Dir()} {
		if err := a.noSymlinkAbove(p.Join("x")); err != nil {
			return err
		}
	}
	if info, err := os.Lstat(a.abs(from)); err != nil || !info.IsDir() {
		return fail(realize.NotDir, errors.New("not a directory"))
	}
	if err := os.Rename(a.abs(from), a.abs(to)); err != nil {
		kind := realize.IO
		switch {
		case errors.Is(err, syscall.ENOTEMPTY), errors.Is(err, syscall.EEXIST):
			kind = realize.NotEmpty
		case errors.Is(err, syscall.ENOTDIR):
			kind = realize.NotDir
		}
		return a.placeErr(to, kind, err)
	}
	p := &plan{}
	p.overlay.redirects = append(p.overlay.redirects, redirect{from: from, to: to, moved: true})
	for _, d := range []realize.Path{from.Dir(), to.Dir()} {
		if err := a.diffDir(ctx, d, false, p); err != nil {
			return err
		}
	}
	// A destination that existed (an empty directory replaced) is known
	// to the index: its parent's diff does not look inside it.
	if err := a.diffDir(ctx, to, true, p); err != nil {
		return err
	}
	return a.record(ctx, p)
}
