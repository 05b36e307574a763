package real

import (
	"errors"
	"io/fs"
	"os"
	"strings"

	"github.com/realizefs/realize"
	bolt "go.etcd.io/bbolt"
)

// The real directory as an overlayfs upper layer (Linux `realize mount`,
// see docs/decisions/0012-overlay-mount.md). The kernel writes three kinds
// of marks there that say what happened to what the lower layer (the
// daemon's read-only all-files NFS view, i.e. the index) showed:
//
//   - a whiteout, a character device 0:0 at a path: what the lower showed
//     there was deleted (a file, real or unreal, or a directory and all
//     below it). The whiteout itself is never indexed.
//   - an opaque directory (xattr trusted.overlay.opaque = "y"): nothing the
//     lower showed below it is visible any more: every unreal record below
//     it that has no file in the upper is deleted.
//   - a redirect (xattr trusted.overlay.redirect on a directory): the
//     directory was renamed from the path the xattr names (absolute from
//     the overlay's root, which is the arena's root, or a sibling's name).
//     Real files moved with the directory and the scanner pairs them by
//     inode as usual; the unreal records below the source move with it.
//
// A copy-up (a real file appearing at an unreal path) is an edit, which the
// scanner already records.
//
// Once a plan is committed the marks are consumed: the whiteout is removed,
// the opaque and redirect xattrs cleared. The lower layer then already
// shows what they expressed (the index no longer holds the deleted or moved
// records), and a stale mark would hide what other peers add there later —
// and, for a whiteout, delete it again at the next scan.

const (
	xattrOpaque   = "trusted.overlay.opaque"
	xattrRedirect = "trusted.overlay.redirect"
)

// overlayPlan is what a diff found of the overlay's marks.
type overlayPlan struct {
	whiteouts []whiteout
	opaque    []realize.Path
	redirects []redirect
}

type whiteout struct {
	path realize.Path
	stat Stat
}

type redirect struct {
	from, to realize.Path
	// moved says the daemon itself moved the directory (RenameDir): no
	// overlay xattr to clear.
	moved bool
}

// whiteout handles a whiteout at path: a delete of what the index holds
// there (rec), never a thing to index.
func (a *Arena) whiteout(path realize.Path, info os.FileInfo, rec *Record, p *plan) error {
	p.overlay.whiteouts = append(p.overlay.whiteouts, whiteout{path: path, stat: StatOf(info)})
	if !live(rec) {
		return nil
	}
	return a.removeTree(path, rec, p)
}

// overlayDir reads a directory's overlay xattrs: it records a redirect and
// reports whether the directory is opaque.
func (a *Arena) overlayDir(dir realize.Path, p *plan) (opaque bool) {
	abs := a.abs(dir)
	if v, ok := getXattr(abs, xattrOpaque); ok && v == "y" {
		opaque = true
		p.overlay.opaque = append(p.overlay.opaque, dir)
	}
	if dir.IsRoot() {
		return opaque
	}
	v, ok := getXattr(abs, xattrRedirect)
	if !ok || v == "" {
		return opaque
	}
	var from realize.Path
	var err error
	if rest, abs := strings.CutPrefix(v, "/"); abs {
		from, err = realize.ParsePath(rest)
	} else if err = realize.CheckName(v); err == nil {
		from = dir.Dir().Join(v)
	}
	if err != nil || from.IsRoot() || from == dir {
		a.logger.Warn("overlay redirect not understood; ignored", "dir", string(dir), "redirect", v, "err", err)
		return opaque
	}
	p.overlay.redirects = append(p.overlay.redirects, redirect{from: from, to: dir})
	return opaque
}

// applyRedirects turns the removal of unreal records below a redirect's
// source into their move below its destination: the overlay shows them
// there (through the redirect), no byte is anywhere but in the cache or on
// other peers, and other peers replay a rename.
func (a *Arena) applyRedirects(p *plan) error {
	if len(p.overlay.redirects) == 0 || len(p.removed) == 0 {
		return nil
	}
	taken := map[realize.Path]bool{}
	keep := p.removed[:0]
	for _, g := range p.removed {
		to, ok := redirected(p.overlay.redirects, g.path)
		if !ok || !g.rec.IsUnreal() || taken[to] || a.ignored(to, false) {
			keep = append(keep, g)
			continue
		}
		old, err := a.record0(to)
		if err != nil {
			return err
		}
		if live(old) {
			keep = append(keep, g) // something is there already: a delete, as the overlay shows it
			continue
		}
		if _, err := os.Lstat(a.abs(to)); err == nil {
			keep = append(keep, g) // a real file took the place: the scanner records it
			continue
		}
		taken[to] = true
		p.renames = append(p.renames, rename{from: g.path, to: to, rec: g.rec, old: old, unreal: true})
	}
	p.removed = keep
	return nil
}

// redirected maps path through the redirect with the longest source that
// holds it.
func redirected(rs []redirect, path realize.Path) (realize.Path, bool) {
	best := -1
	for i, r := range rs {
		if path.HasPrefix(r.from) && path != r.from && (best < 0 || len(r.from) > len(rs[best].from)) {
			best = i
		}
	}
	if best < 0 {
		return "", false
	}
	r := rs[best]
	return realize.Path(string(r.to) + string(path)[len(r.from):]), true
}

// consumeOverlay removes the marks a committed plan recorded. Each is
// checked again first: a mark that changed since the diff is left for the
// next scan.
func (a *Arena) consumeOverlay(p *plan) {
	for _, w := range p.overlay.whiteouts {
		abs := a.abs(w.path)
		info, err := os.Lstat(abs)
		if err != nil || !isWhiteout(info) || StatOf(info).Inode != w.stat.Inode || a.isKept(w.path) {
			continue
		}
		if rec, err := a.record0(w.path); err != nil || live(rec) {
			continue
		}
		if err := os.Remove(abs); err != nil && !errors.Is(err, fs.ErrNotExist) {
			a.logger.Warn("overlay whiteout recorded but not removed", "path", string(w.path), "err", err)
		}
	}
	for _, d := range p.overlay.opaque {
		a.clearXattr(d, xattrOpaque)
	}
	for _, r := range p.overlay.redirects {
		if r.moved {
			continue
		}
		// While the source still holds records (its removal was not part
		// of this plan), the redirect is what shows them at the
		// destination: keep it for the scan that sees the source go.
		if a.holdsAny(r.from) {
			continue
		}
		a.clearXattr(r.to, xattrRedirect)
	}
}

func (a *Arena) clearXattr(dir realize.Path, name string) {
	if err := removeXattr(a.abs(dir), name); err != nil {
		a.logger.Warn("overlay mark recorded but not cleared", "dir", string(dir), "xattr", name, "err", err)
	}
}

// holdsAny tells whether the index has a live record at or below path.
func (a *Arena) holdsAny(path realize.Path) bool {
	found := false
	_ = a.db.View(func(tx *bolt.Tx) error {
		ix, err := OpenIndex(tx, a.name)
		if err != nil {
			return err
		}
		return ix.Walk(path, func(_ realize.Path, r *Record) error {
			if live(r) {
				found = true
				return errStopWalk
			}
			return nil
		})
	})
	return found
}

var errStopWalk = errors.New("stop")
