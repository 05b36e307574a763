package real

import (
	"errors"
	"io/fs"
	"os"
	"sort"

	"github.com/realizefs/realize"
	bolt "go.etcd.io/bbolt"
)

// Observer follows the index as it changes. The daemon wires the NFS view
// to it: a kernel caches what it was shown (file handles, directory
// listings, names looked up), and only learns that something changed
// through what the server shows next (docs/decisions/0014-kernel-caches.md).
type Observer interface {
	// Moved is called inside the transaction that records the move of
	// from (a file, or a directory and everything below it) to to, so
	// that state kept in the same database follows it atomically. An
	// error aborts the transaction. A directory's move is reported before
	// the moves of the files below it. oldName says a person moved the
	// directory through an overlay mount: the kernel goes on looking it
	// up under its old name in the lower layer, and the whiteout the
	// kernel left at from is kept for as long as the old name should
	// answer (until something is placed at or below it).
	Moved(tx *bolt.Tx, arena realize.ArenaName, from, to realize.Path, oldName bool) error
	// Listed is called once a transaction committed, with the directories
	// whose list of names changed (a path added, removed, or changed
	// between file, directory and symlink).
	Listed(arena realize.ArenaName, dirs []realize.Path)
}

// noteListed marks p's directory as changed if the put from old to r adds,
// removes or retypes a name.
func (ix *Index) noteListed(p realize.Path, old, r *Record) {
	if p.IsRoot() {
		return
	}
	was, is := live(old), !r.Deleted
	if was == is && (!is || old.Meta.Kind == r.Meta.Kind) {
		return
	}
	if ix.listed == nil {
		ix.listed = map[realize.Path]bool{}
	}
	ix.listed[p.Dir()] = true
}

// takeListed returns (and forgets) the directories noteListed marked,
// sorted.
func (ix *Index) takeListed() []realize.Path {
	if len(ix.listed) == 0 {
		return nil
	}
	out := make([]realize.Path, 0, len(ix.listed))
	for d := range ix.listed {
		out = append(out, d)
	}
	clear(ix.listed)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// update runs fn in a write transaction on the arena's index and, once it
// committed, tells the observer which directories' names changed.
func (a *Arena) update(fn func(tx *bolt.Tx, ix *Index) error) error {
	var listed []realize.Path
	err := a.db.Update(func(tx *bolt.Tx) error {
		ix, err := OpenIndex(tx, a.name)
		if err != nil {
			return err
		}
		if err := fn(tx, ix); err != nil {
			return err
		}
		listed = ix.takeListed()
		return nil
	})
	if err == nil && len(listed) > 0 && a.observer != nil {
		a.observer.Listed(a.name, listed)
	}
	return err
}

// move is one path moved by a batch of entries.
type move struct{ from, to realize.Path }

// keptMoves are the directories a plan moved through an overlay mount
// (redirects) whose old name keeps its whiteout.
func (p *plan) keptMoves() []move {
	var out []move
	for _, r := range p.overlay.redirects {
		if r.moved {
			continue
		}
		for _, w := range p.overlay.whiteouts {
			if w.path == r.from {
				out = append(out, move{from: r.from, to: r.to})
				break
			}
		}
	}
	return out
}

// moves returns what a batch of entries moved, for Observer.Moved: the
// renamed files, and above them the directories that moved with them — a
// directory that the batch removes (rmdir) while it creates one of the
// same content elsewhere (mkdir), the files below being renames between
// the two under the same relative names. The history records such a move
// as its parts (the files' renames, the directories' mkdir and rmdir);
// this puts the directory's move together again. Directories come first,
// parents before children, then files.
func moves(entries []*realize.Entry) []move {
	rmdirs, mkdirs := map[realize.Path]bool{}, map[realize.Path]bool{}
	var files []move
	for _, e := range entries {
		switch e.Op {
		case realize.OpRmdir:
			rmdirs[e.Path] = true
		case realize.OpMkdir:
			mkdirs[e.Path] = true
		case realize.OpRename:
			files = append(files, move{from: e.From, to: e.Path})
		}
	}
	dirs := map[move]bool{}
	for _, f := range files {
		from, to := f.from.Dir(), f.to.Dir()
		var top move
		for !from.IsRoot() && !to.IsRoot() {
			if rmdirs[from] && mkdirs[to] {
				top = move{from: from, to: to}
			}
			if from.Base() != to.Base() {
				break
			}
			from, to = from.Dir(), to.Dir()
		}
		if top.from != "" {
			dirs[top] = true
		}
	}
	out := make([]move, 0, len(dirs)+len(files))
	for d := range dirs {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].from < out[j].from })
	// A directory moved along with a moved ancestor is covered by it.
	kept := out[:0]
	for _, d := range out {
		if len(kept) > 0 && d.from.HasPrefix(kept[len(kept)-1].from) {
			continue
		}
		kept = append(kept, d)
	}
	return append(kept, files...)
}

// observeMoves reports a batch's moves to the observer within tx, and
// keeps the whiteouts at the old names of kept moves.
func (a *Arena) observeMoves(tx *bolt.Tx, ix *Index, entries []*realize.Entry, kept []move) error {
	for _, k := range kept {
		if err := ix.keepWhiteout(k.from); err != nil {
			return err
		}
	}
	if a.observer == nil {
		return nil
	}
	oldName := map[realize.Path]bool{}
	all := kept
	for _, k := range kept {
		oldName[k.from] = true
	}
	for _, m := range moves(entries) {
		if !oldName[m.from] {
			all = append(all, m)
		}
	}
	for _, m := range all {
		if err := a.observer.Moved(tx, a.name, m.from, m.to, oldName[m.from]); err != nil {
			return err
		}
	}
	return nil
}

// isKept tells whether the whiteout at p is kept.
func (a *Arena) isKept(p realize.Path) bool {
	kept := false
	_ = a.db.View(func(tx *bolt.Tx) error {
		ix, err := OpenIndex(tx, a.name)
		if err == nil {
			kept = ix.keptWhiteout(p)
		}
		return err
	})
	return kept
}

// clearKept removes the kept whiteouts at p and above it: something is
// being placed there, which they would hide.
func (a *Arena) clearKept(p realize.Path) error {
	for q := p; !q.IsRoot(); q = q.Dir() {
		info, err := os.Lstat(a.abs(q))
		if err != nil || !isWhiteout(info) || !a.isKept(q) {
			continue
		}
		if err := os.Remove(a.abs(q)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return a.placeErr(p, realize.IO, err)
		}
		if err := a.update(func(_ *bolt.Tx, ix *Index) error { return ix.dropKept(q) }); err != nil {
			return err
		}
	}
	return nil
}

// Kept whiteouts. When a person renames a directory through an overlay
// mount, the kernel keeps looking the directory up under its old name in
// the lower layer (the NFS view) for as long as it caches it, and if that
// name is gone it answers "stale file handle" for the new one. So the
// whiteout the kernel left at the old name is kept (the NFS view answers
// for the old name with the moved directory's handle while it is there,
// and the whiteout hides that name from every fresh lookup), until
// something is placed at or below that name.

// keepWhiteout remembers that the whiteout at p is kept.
func (ix *Index) keepWhiteout(p realize.Path) error {
	return ix.ab.Bucket(bucketKept).Put(PathKey(p), nil)
}

// keptWhiteout tells whether the whiteout at p is kept.
func (ix *Index) keptWhiteout(p realize.Path) bool {
	if ix.ab == nil {
		return false
	}
	b := ix.ab.Bucket(bucketKept)
	return b != nil && b.Get(PathKey(p)) != nil
}

// dropKept forgets that the whiteout at p is kept.
func (ix *Index) dropKept(p realize.Path) error {
	if b := ix.ab.Bucket(bucketKept); b != nil {
		return b.Delete(PathKey(p))
	}
	return nil
}
