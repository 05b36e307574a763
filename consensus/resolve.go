package consensus

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/real"
)

// A resolution is a history entry (OpResolve) that settles the conflict
// at a path (decision 0015):
//
//   - Keeping what the path shows, it records the path's current state
//     again under the merge of its frontier: no new version, so an edit
//     made meanwhile elsewhere simply follows it, and two people doing it
//     at once record the same thing.
//   - Keeping a version kept aside, it is a new version holding that
//     content, under the merge of everything seen plus the resolution
//     counter (realize.ResolveCounter): two such resolutions of the same
//     state have the same vector, and Decide keeps one of them by its rule
//     rather than making a new conflict of them.
//   - Either way its Own vector covers the kept-aside versions it drops;
//     every peer deletes the records that vector covers and never lists
//     them again (real.Index.Drop), whatever order entries arrive in.
//
// A resolution and a concurrent edit are still a conflict: the edit is
// new content nobody has chosen against.

// Resolution is what a person decided about the conflict at a path
// (`realize resolve`, or deleting versions under conflicts/ in the mount).
type Resolution struct {
	// Keep is the kept-aside version the path is to hold; nil keeps what
	// the path shows now.
	Keep *realize.Alternative
	// Drop limits the resolution to these kept-aside versions (deleting
	// them under conflicts/); the others stay listed. Nil drops them all.
	// Not with Keep.
	Drop []realize.Alternative
	// Copies places every kept-aside version as a new file beside the
	// path before the conflict is cleared (--keep-all-as-copies), named
	// by CopyName (nil: CopyPath with the origin's short id).
	Copies   bool
	CopyName func(realize.Path, realize.Alternative) (realize.Path, error)
}

// Resolved reports what a resolution did.
type Resolved struct {
	Kept    realize.Alternative   // what the path holds now
	Dropped []realize.Alternative // the versions no longer kept aside
	Copies  []realize.Path        // the new files, with Copies
}

// Resolve records a person's resolution of the conflict at path: the
// bytes of the version kept are placed first (fetched if need be), then
// one entry records it, clears the versions dropped from the list and
// frees their bytes here; other peers do the same when they apply it.
// Nothing is cleared if anything before fails.
func (ap *Applier) Resolve(ctx context.Context, path realize.Path, r Resolution) (*Resolved, error) {
	if r.Keep != nil && r.Drop != nil {
		return nil, ap.resolveErr(path, realize.Invalid, errors.New("keep a version or drop some, not both"))
	}
	listed, err := ap.Arena.ConflictsAt(path)
	if err != nil {
		return nil, err
	}
	if len(listed) == 0 {
		return nil, ap.resolveErr(path, realize.NotExist, errors.New("no conflict at this path"))
	}
	out := &Resolved{}
	if r.Copies {
		if out.Copies, err = ap.placeCopies(ctx, path, listed, r.CopyName); err != nil {
			return nil, err
		}
	}
	if err := ap.Arena.Place(ctx, path, ap.resolution(path, r, out)); err != nil {
		return nil, err
	}
	return out, nil
}

func (ap *Applier) resolveErr(path realize.Path, kind realize.ErrKind, err error) error {
	return &realize.Error{Op: "resolve", Kind: kind, Arena: ap.Arena.Name(), Path: string(path), Err: err}
}

// resolution decides, under the arena's lock, what the path holds and
// which versions are dropped, from the state at that moment.
func (ap *Applier) resolution(path realize.Path, r Resolution, out *Resolved) real.Decider {
	return func(local []realize.Alternative) (*real.Change, error) {
		cs, err := ap.Arena.ConflictsAt(path)
		if err != nil {
			return nil, err
		}
		listed := alternatives(cs)
		if len(listed) == 0 {
			return nil, ap.resolveErr(path, realize.NotExist, errors.New("no conflict at this path (resolved meanwhile?)"))
		}
		var merged realize.VersionVector
		for _, a := range local {
			merged = merged.Merge(a.Version)
		}
		drop, vec, err := ap.dropped(path, listed, r.Drop)
		if err != nil {
			return nil, err
		}
		ch := &real.Change{Op: realize.OpResolve, Drop: vec}
		switch {
		case r.Keep == nil && len(local) == 0:
			// Nothing recorded at the path: it was deleted and its
			// tombstone trimmed away. There is no state to record again,
			// only versions to drop (real.Change with no version).
			ch.Keep = true
		case r.Keep == nil:
			ch.Result = realize.Alternative{Origin: local[0].Origin, Meta: local[0].Meta, Version: merged}
			ch.Keep = true
		default:
			k, ok := find(listed, *r.Keep)
			if !ok {
				return nil, ap.resolveErr(path, realize.NotExist, fmt.Errorf("version %s is no longer kept aside", real.VersionName(*r.Keep)))
			}
			// A new version, after everything the resolver saw.
			rc, base := realize.ResolveCounter(), merged.Merge(vec)
			ch.Result = realize.Alternative{Origin: k.Origin, Meta: k.Meta, Version: base.With(rc, base[rc]+1)}
			if k.Meta.Kind == realize.KindFile {
				ch.Fill = ap.filler(k.Meta)
			}
		}
		out.Kept, out.Dropped = ch.Result, drop
		return ch, nil
	}
}

// dropped returns the versions a resolution drops and the vector that
// covers them: all those listed; or only those asked for, which must not
// cover another one still listed (it would be dropped too). The vector
// is the merge of theirs only, not of the path's frontier: it must not
// cover the version the path shows, which a resolution keeping it means
// to keep — should a concurrent change beat that version later, it is
// listed like any loser, not dropped unseen.
func (ap *Applier) dropped(path realize.Path, listed, want []realize.Alternative) ([]realize.Alternative, realize.VersionVector, error) {
	if want == nil {
		var vec realize.VersionVector
		for _, l := range listed {
			vec = vec.Merge(l.Version)
		}
		return listed, vec, nil
	}
	var vec realize.VersionVector
	var drop []realize.Alternative
	for _, w := range want {
		l, ok := find(listed, w)
		if !ok {
			return nil, nil, ap.resolveErr(path, realize.NotExist, fmt.Errorf("version %s is no longer kept aside", real.VersionName(w)))
		}
		drop = append(drop, l)
		vec = vec.Merge(l.Version)
	}
	for _, l := range listed {
		if _, asked := find(drop, l); asked {
			continue
		}
		if o := l.Version.Compare(vec); o == realize.Before || o == realize.Equal {
			return nil, nil, ap.resolveErr(path, realize.Busy, fmt.Errorf("version %s is older and would go too: drop it first, or resolve the whole path", real.VersionName(l)))
		}
	}
	return drop, vec, nil
}

// find looks a version up by what names it: origin and content.
func find(in []realize.Alternative, a realize.Alternative) (realize.Alternative, bool) {
	for _, x := range in {
		if x.Origin == a.Origin && x.Meta.Kind == a.Meta.Kind && x.Meta.Blob == a.Meta.Blob && x.Meta.Target == a.Meta.Target {
			return x, true
		}
	}
	return realize.Alternative{}, false
}

func alternatives(cs []real.Conflict) []realize.Alternative {
	out := make([]realize.Alternative, len(cs))
	for i, c := range cs {
		out[i] = c.Alternative
	}
	return out
}

// placeCopies places each kept-aside file or symlink as a new local file
// beside path. A copy already there with the same content counts (a
// resolution that failed halfway and is run again).
func (ap *Applier) placeCopies(ctx context.Context, path realize.Path, listed []real.Conflict, name func(realize.Path, realize.Alternative) (realize.Path, error)) ([]realize.Path, error) {
	if name == nil {
		name = func(p realize.Path, a realize.Alternative) (realize.Path, error) {
			return CopyPath(p, a.Origin.Short(), a.Meta.Blob)
		}
	}
	var out []realize.Path
	for _, c := range listed {
		if c.Meta.Kind != realize.KindFile && c.Meta.Kind != realize.KindSymlink {
			continue // a directory's contents are paths of their own
		}
		to, err := name(path, c.Alternative)
		if err != nil {
			return out, err
		}
		if err := ap.Arena.Place(ctx, to, ap.copyOf(to, c.Alternative)); err != nil {
			return out, err
		}
		out = append(out, to)
	}
	return out, nil
}

func (ap *Applier) copyOf(to realize.Path, c realize.Alternative) real.Decider {
	return func(local []realize.Alternative) (*real.Change, error) {
		var base realize.VersionVector
		var shown realize.Alternative
		for i, a := range local {
			base = base.Merge(a.Version)
			if i == 0 {
				shown = a
			}
		}
		if shown.Meta.Kind != realize.KindNone {
			if sameContent(shown.Meta, c.Meta) {
				return nil, nil
			}
			return nil, &realize.Error{Op: "resolve", Kind: realize.Exist, Arena: ap.Arena.Name(), Path: string(to),
				Err: errors.New("something else is at the name of the copy")}
		}
		res := realize.Alternative{Meta: c.Meta, Version: base}
		ch := &real.Change{Op: opFor(shown, res), Result: res, Stamp: true}
		if c.Meta.Kind == realize.KindFile {
			ch.Fill = ap.filler(c.Meta)
		}
		return ch, nil
	}
}

// CopyPath names the copy of a kept-aside version beside path:
// "name (conflict WHO HASH).ext", WHO naming the version's origin and HASH
// its short content hash (for files).
func CopyPath(path realize.Path, who string, blob realize.Hash) (realize.Path, error) {
	base := string(path.Base())
	stem, ext := base, ""
	if i := strings.LastIndexByte(base, '.'); i > 0 {
		stem, ext = base[:i], base[i:]
	}
	tag := "conflict " + who
	if !blob.IsZero() {
		tag += " " + blob.Short()
	}
	name := stem + " (" + tag + ")" + ext
	if err := realize.CheckName(name); err != nil {
		return "", &realize.Error{Op: "resolve", Kind: realize.Invalid, Path: string(path), Err: fmt.Errorf("name of the copy: %w", err)}
	}
	return path.Dir().Join(name), nil
}

// FindVersion finds the version a person named among the versions of a
// path: by its name (real.VersionName, also with the path's extension, as
// conflicts/ in the mount shows it) or by at least 4 leading hex digits of
// its content hash.
func FindVersion(path realize.Path, versions []realize.Alternative, name string) (realize.Alternative, error) {
	var found []realize.Alternative
	ext := ""
	if base := string(path.Base()); strings.LastIndexByte(base, '.') > 0 {
		ext = base[strings.LastIndexByte(base, '.'):]
	}
	prefix := strings.ToLower(name)
	byHash := len(prefix) >= 4 && len(prefix) <= 64 && strings.Trim(prefix, "0123456789abcdef") == ""
	for _, v := range versions {
		n := real.VersionName(v)
		if name == n || ext != "" && name == n+ext ||
			byHash && v.Meta.Kind == realize.KindFile && strings.HasPrefix(v.Meta.Blob.String(), prefix) {
			if _, dup := find(found, v); !dup {
				found = append(found, v)
			}
		}
	}
	var names []string
	for _, v := range versions {
		names = append(names, real.VersionName(v))
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return realize.Alternative{}, &realize.Error{Op: "resolve", Kind: realize.NotExist, Path: string(path),
			Err: fmt.Errorf("no version %q (its versions: %s)", name, strings.Join(names, ", "))}
	}
	return realize.Alternative{}, &realize.Error{Op: "resolve", Kind: realize.Invalid, Path: string(path),
		Err: fmt.Errorf("%q names %d versions: give more of the hash (its versions: %s)", name, len(found), strings.Join(names, ", "))}
}
