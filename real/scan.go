package real

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/realizefs/realize"
	bolt "go.etcd.io/bbolt"
)

// A scan compares part of the real directory with the index and records
// the differences. It runs in three steps:
//
//  1. diff: read directories and lstat entries (no file is opened), compare
//     with the index, and build a plan: directories and symlinks to record,
//     paths that disappeared, files whose (size, mtime, ctime, inode) no
//     longer match what was recorded;
//  2. renames: a file that disappeared and a file that appeared with the
//     same device, inode, size and mtime is the same file moved — recorded
//     as a rename, without reading it;
//  3. record: structural changes in one transaction, then the files to hash
//     through a worker pool, committed in batches.
//
// Every transaction writes index records and their history entries
// together, so a crash at any point leaves the two consistent, and the next
// scan finds whatever was not yet recorded by comparing stats again.

// plan is what a diff found.
type plan struct {
	mkdirs  []newDir
	links   []newLink
	removed []gone // files and symlinks that disappeared
	rmdirs  []gone // directories that disappeared
	hash    []hashJob
	renames []rename
	// retyped are paths that changed kind (file <-> dir): their removal
	// must be recorded before their creation.
	retyped map[realize.Path]bool
	// visited and queued keep a path from being planned twice when a batch
	// names both a directory and something inside it.
	visited map[realize.Path]bool
	queued  map[realize.Path]bool
	// overlay holds the overlayfs marks found (see overlay.go).
	overlay overlayPlan
	// full: the plan compares the whole arena (ScanAll), so its
	// deletions are every deletion there is.
	full bool
	// judge: the plan looks again at settled deletions, to judge them
	// together (guard_settle.go).
	judge bool
	// incidental: the plan looked at a directory for another reason (a
	// remote change to place), maybe in the middle of a deletion the
	// watcher will report whole: its deletions always settle.
	incidental bool
}

// visit reports whether dir is diffed for the first time in this plan.
func (p *plan) visit(dir realize.Path) bool {
	if p.visited == nil {
		p.visited = map[realize.Path]bool{}
	}
	if p.visited[dir] {
		return false
	}
	p.visited[dir] = true
	return true
}

// queue adds a file to hash unless it is queued already.
func (p *plan) queue(j hashJob) {
	if p.queued == nil {
		p.queued = map[realize.Path]bool{}
	}
	if !p.queued[j.path] {
		p.queued[j.path] = true
		p.hash = append(p.hash, j)
	}
}

type newDir struct {
	path realize.Path
	stat Stat
	old  *Record
}

type newLink struct {
	path   realize.Path
	target string
	stat   Stat
	old    *Record
}

type gone struct {
	path realize.Path
	rec  *Record
}

type hashJob struct {
	path realize.Path
	stat Stat
	old  *Record
}

type rename struct {
	from, to realize.Path
	rec      *Record // the source's record
	stat     Stat    // the destination's stat
	old      *Record // what was at the destination (tombstone or nil)
	unreal   bool    // an unreal file moved with its directory (overlay redirect)
}

func live(r *Record) bool { return r != nil && !r.Deleted }

// diffDir compares one directory with the index. New directories are always
// diffed recursively (nothing under them is known); known ones only when
// recursive is set.
func (a *Arena) diffDir(ctx context.Context, dir realize.Path, recursive bool, p *plan) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !p.visit(dir) {
		return nil
	}
	ents, err := os.ReadDir(a.abs(dir))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // the parent's diff records it
		}
		// Unreadable: say so, and leave what the index knows alone — an
		// unreadable directory is not an empty one.
		a.skip(dir, err)
		return nil
	}
	a.status.unskip(string(dir))
	known, err := a.children(dir)
	if err != nil {
		return err
	}
	opaque := a.overlayDir(dir, p)
	seen := make(map[string]bool, len(ents))
	for _, e := range ents {
		name := e.Name()
		if err := realize.CheckName(name); err != nil {
			a.skipRaw(filepath.Join(string(dir), name), err)
			continue
		}
		seen[name] = true
		if err := a.diffEntry(ctx, dir.Join(name), e, known[name], recursive, p); err != nil {
			return err
		}
	}
	for name, rec := range known {
		child := dir.Join(name)
		// An unreal file has no bytes on disk by design: its absence is
		// not a deletion — unless an opaque overlay directory hides it,
		// or it was removed through the mount and the removal is held.
		if !seen[name] && live(rec) && (!rec.IsUnreal() || opaque || a.unrealGone(child, rec)) && !a.ignored(child, rec.Meta.Kind == realize.KindDir) {
			if err := a.removeTree(child, rec, p); err != nil {
				return err
			}
		}
	}
	return nil
}

func (a *Arena) diffEntry(ctx context.Context, path realize.Path, e fs.DirEntry, rec *Record, recursive bool, p *plan) error {
	isDir := e.IsDir()
	if a.ignored(path, isDir) {
		return nil
	}
	info, err := e.Info()
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			a.skip(path, err)
		}
		return nil
	}
	if isDir && a.isOwnData(info) {
		return nil
	}
	st := StatOf(info)
	switch mode := info.Mode(); {
	case mode.IsDir():
		if live(rec) && rec.Meta.Kind == realize.KindDir {
			if recursive {
				return a.diffDir(ctx, path, true, p)
			}
			return nil
		}
		if err := a.retype(path, rec, realize.KindDir, p); err != nil {
			return err
		}
		p.mkdirs = append(p.mkdirs, newDir{path: path, stat: st, old: rec})
		return a.diffDir(ctx, path, true, p)
	case mode.IsRegular():
		// A file at an unreal path was put there locally (nothing else
		// writes there but Place, which records it): always hash it.
		if rec.IsReal() && rec.Stat.SameContent(st) && rec.Meta.Exec == isExec(st.Mode) {
			return nil
		}
		if err := a.retype(path, rec, realize.KindFile, p); err != nil {
			return err
		}
		p.queue(hashJob{path: path, stat: st, old: rec})
	case mode&fs.ModeSymlink != 0:
		target, err := os.Readlink(a.abs(path))
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				a.skip(path, err)
			}
			return nil
		}
		if live(rec) && rec.Meta.Kind == realize.KindSymlink && rec.Meta.Target == target {
			return nil
		}
		if err := a.retype(path, rec, realize.KindSymlink, p); err != nil {
			return err
		}
		p.links = append(p.links, newLink{path: path, target: target, stat: st, old: rec})
	case isWhiteout(info):
		return a.whiteout(path, info, rec, p)
	default:
		a.skip(path, errNotRegular)
	}
	return nil
}

var errNotRegular = errors.New("not a regular file, directory or symlink (device, socket or pipe)")

// retype handles a path whose kind changed (file, directory, symlink): the
// old thing is recorded as removed before the new one is recorded.
func (a *Arena) retype(path realize.Path, rec *Record, kind realize.Kind, p *plan) error {
	if !live(rec) || rec.Meta.Kind == kind {
		return nil
	}
	if p.retyped == nil {
		p.retyped = make(map[realize.Path]bool)
	}
	p.retyped[path] = true
	return a.removeTree(path, rec, p)
}

// removeTree records that path (and, for a directory, everything the index
// knows beneath it) is gone.
func (a *Arena) removeTree(path realize.Path, rec *Record, p *plan) error {
	if rec.Meta.Kind != realize.KindDir {
		p.removed = append(p.removed, gone{path, rec})
		return nil
	}
	return a.db.View(func(tx *bolt.Tx) error {
		ix, err := OpenIndex(tx, a.name)
		if err != nil {
			return err
		}
		return ix.Walk(path, func(q realize.Path, r *Record) error {
			switch {
			case !live(r):
			case r.Meta.Kind == realize.KindDir:
				p.rmdirs = append(p.rmdirs, gone{q, r})
			default:
				p.removed = append(p.removed, gone{q, r})
			}
			return nil
		})
	})
}

// children returns the index's view of a directory, keyed by name.
func (a *Arena) children(dir realize.Path) (map[string]*Record, error) {
	out := map[string]*Record{}
	err := a.db.View(func(tx *bolt.Tx) error {
		ix, err := OpenIndex(tx, a.name)
		if err != nil {
			return err
		}
		kids, err := ix.Children(dir)
		for _, c := range kids {
			out[c.Name] = c.Rec
		}
		return err
	})
	return out, err
}

// checkFile compares a single file (reported by the watcher) with the index.
func (a *Arena) checkFile(path realize.Path, p *plan) error {
	info, err := os.Lstat(a.abs(path))
	if err != nil || !info.Mode().IsRegular() {
		// Gone or no longer a file: the watcher also reported the parent
		// directory, whose diff records it.
		return nil
	}
	var rec *Record
	err = a.db.View(func(tx *bolt.Tx) error {
		ix, err := OpenIndex(tx, a.name)
		if err == nil {
			rec, err = ix.Get(path)
		}
		return err
	})
	if err != nil || a.ignored(path, false) {
		return err
	}
	st := StatOf(info)
	if live(rec) && rec.Meta.Kind != realize.KindFile {
		return nil // a retype: the parent's diff handles it
	}
	if rec.IsReal() && rec.Stat.SameContent(st) && rec.Meta.Exec == isExec(st.Mode) {
		return nil
	}
	p.queue(hashJob{path: path, stat: st, old: rec})
	return nil
}

// matchRenames pairs disappeared files with appeared ones that are the same
// inode with the same size and mtime, and turns each pair into a rename.
func (p *plan) matchRenames() {
	if len(p.removed) == 0 || len(p.hash) == 0 {
		return
	}
	type ident struct {
		dev, ino uint64
		size     int64
		mtime    int64
	}
	src := make(map[ident]int, len(p.removed))
	for i, g := range p.removed {
		if g.rec.Meta.Kind == realize.KindFile && g.rec.Stat.Inode != 0 {
			s := g.rec.Stat
			src[ident{s.Dev, s.Inode, s.Size, s.MTime}] = i
		}
	}
	used := make(map[int]bool)
	keep := p.hash[:0]
	for _, j := range p.hash {
		i, ok := src[ident{j.stat.Dev, j.stat.Inode, j.stat.Size, j.stat.MTime}]
		if !ok || used[i] || p.retyped[j.path] || isExec(j.stat.Mode) != p.removed[i].rec.Meta.Exec {
			keep = append(keep, j)
			continue
		}
		used[i] = true
		g := p.removed[i]
		p.renames = append(p.renames, rename{from: g.path, to: j.path, rec: g.rec, stat: j.stat, old: j.old})
	}
	p.hash = keep
	rest := p.removed[:0]
	for i, g := range p.removed {
		if !used[i] {
			rest = append(rest, g)
		}
	}
	p.removed = rest
}

// sort puts the plan in an order that is valid to replay on another peer:
// parents exist before children are created, and are removed after them.
func (p *plan) sort() {
	sort.Slice(p.mkdirs, func(i, j int) bool { return p.mkdirs[i].path < p.mkdirs[j].path })
	sort.Slice(p.links, func(i, j int) bool { return p.links[i].path < p.links[j].path })
	sort.Slice(p.renames, func(i, j int) bool { return p.renames[i].to < p.renames[j].to })
	sort.Slice(p.removed, func(i, j int) bool { return p.removed[i].path > p.removed[j].path })
	sort.Slice(p.rmdirs, func(i, j int) bool { return p.rmdirs[i].path > p.rmdirs[j].path })
	sort.Slice(p.hash, func(i, j int) bool { return p.hash[i].path < p.hash[j].path })
}

func isExec(m os.FileMode) bool { return m&0o111 != 0 }
