package consensus

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/real"
	"github.com/zeebo/blake3"
)

// Fetcher gets a blob's bytes from other peers. Implementations verify
// every block against its hash before writing it, and report to l (which
// may be nil) each block written, so that the blob is hashed as it lands.
type Fetcher interface {
	Fetch(ctx context.Context, arena realize.ArenaName, m realize.Meta, f *os.File, l *real.Landed) error
}

// Applier applies other peers' history entries to one arena's real
// directory.
type Applier struct {
	Arena  *real.Arena
	Fetch  Fetcher // nil: only local copies can fill files
	Logger *slog.Logger
	// Pinned tells whether a path is marked to be kept real here (nil:
	// everything is). A file that is not pinned, not real here already and
	// not present locally under another name is recorded unreal: listed,
	// its bytes left on the peers that hold them.
	Pinned func(realize.Path) bool
}

// maxAttempts bounds re-deciding when the local file keeps changing under
// a placement; the entry is then left for the next pass.
const maxAttempts = 3

// Apply applies one entry from another peer's log (or relayed through
// one). Entries must be applied in each log's order; entries of different
// logs may interleave in any order: the outcome is the same.
func (ap *Applier) Apply(ctx context.Context, e *realize.Entry) error {
	switch e.Op {
	case realize.OpRealize, realize.OpUnrealize:
		return nil // who holds what: the listing's business, not the tree's
	case realize.OpResolve:
		return ap.applyResolve(ctx, e)
	case realize.OpConflict:
		// Losers named anywhere are listed everywhere, whatever this peer
		// ends up deciding: the list is the same on every peer. So is the
		// end of a listing the winner's showing covers.
		in := Incoming(e)
		d := real.Decided{Winner: in[0], Losers: keepable(e.Losers, e.Meta), At: e.Version}
		if err := ap.Arena.RecordConflicts(e.Path, d, e.Meta.Blob); err != nil {
			return err
		}
		if err := ap.place(ctx, e.Path, in, nil); err != nil {
			return err
		}
		return ap.Arena.FreeKept(e.Meta.Blob)
	case realize.OpRename:
		return ap.applyRename(ctx, e)
	}
	return ap.place(ctx, e.Path, Incoming(e), nil)
}

// applyRename applies a rename: the destination first, since its bytes
// may come from the source. The source's removal waits for a destination
// that will be tried again (the local bytes may be needed), but not for
// one that will not: one whose bytes are nowhere (the replicator skips
// the entry if a later version of the destination is known, and they
// were not at the source here, or they would have been copied) or one
// this peer cannot take at all. Skipping the entry whole would lose the
// removal for good: once the log is applied past it, relayed copies of
// it count as decided (history.Log.Known) and are ignored.
func (ap *Applier) applyRename(ctx context.Context, e *realize.Entry) error {
	dst := realize.Alternative{Origin: e.Origin, Meta: e.Meta, Version: e.Version}
	err := ap.place(ctx, e.Path, []realize.Alternative{dst}, nil)
	if err != nil && realize.KindOf(err) != realize.Unavailable && retryLater(err) {
		return err
	}
	src := realize.Alternative{Origin: e.Origin, Version: e.FromVersion}
	return errors.Join(err, ap.place(ctx, e.From, []realize.Alternative{src}, nil))
}

// applyResolve applies another peer's resolution: the versions it drops
// leave the conflicts list (whether or not this peer takes the content it
// kept: it may know a newer version already), then the content is placed
// like any version. The bytes of the content kept are freed from the
// kept-aside store only once placed: they may be the only local copy.
func (ap *Applier) applyResolve(ctx context.Context, e *realize.Entry) error {
	drop := Dropped(e)
	if err := ap.Arena.Drop(e.Path, drop, e.Meta.Blob); err != nil {
		return err
	}
	if len(e.Version) == 0 {
		return nil // made where the path had no record (trimmed): it only drops
	}
	if err := ap.place(ctx, e.Path, Incoming(e), e); err != nil {
		return err
	}
	return ap.Arena.FreeKept(e.Meta.Blob)
}

// Dropped returns the vector of the kept-aside versions a resolution
// entry drops.
func Dropped(e *realize.Entry) realize.VersionVector {
	if e.Own != nil {
		return e.Own
	}
	return e.Version
}

// ApplyVersions decides a path against versions known from elsewhere (a
// snapshot's frontier) and applies the outcome, having first recorded what
// that frontier says about the conflicts list and merged the bookkeeping
// that came with it (nil: none). The bytes of the content shown are freed
// from the kept-aside store only once placed.
func (ap *Applier) ApplyVersions(ctx context.Context, path realize.Path, versions []realize.Alternative, cs *real.ConflictState) error {
	var shown realize.Hash
	if len(versions) > 1 {
		var at realize.VersionVector
		for _, v := range versions {
			at = at.Merge(v.Version)
		}
		d := real.Decided{Winner: versions[0], Losers: keepable(versions[1:], versions[0].Meta), At: at}
		shown = versions[0].Meta.Blob
		if err := ap.Arena.RecordConflicts(path, d, shown); err != nil {
			return err
		}
	}
	if err := ap.Arena.MergeConflicts(path, cs, shown); err != nil {
		return err
	}
	if err := ap.place(ctx, path, versions, nil); err != nil {
		return err
	}
	return ap.Arena.FreeKept(shown)
}

// ApplyVersionsRecords applies distinct paths each with one version known
// from elsewhere (a snapshot) at once where the outcome moves no bytes — a
// file listed unreal, a path already as decided — in one transaction
// (real.Arena.PlaceRecords). It returns the indexes of the paths left for
// ApplyVersions (all of them if any has several versions: their conflicts
// are recorded first).
func (ap *Applier) ApplyVersionsRecords(ctx context.Context, paths []realize.Path, versions [][]realize.Alternative) ([]int, error) {
	for _, v := range versions {
		if len(v) != 1 {
			return allIndexes(len(paths)), nil
		}
	}
	return ap.placeRecords(ctx, paths, versions)
}

func (ap *Applier) placeRecords(ctx context.Context, paths []realize.Path, incoming [][]realize.Alternative) ([]int, error) {
	// Versions this peer has already, or has something newer than, change
	// nothing whatever is on disk: they are dropped before the arena's
	// lock and the disk are touched. Every entry a peer's log brings back
	// of what this peer sent it is such a version.
	local, err := ap.Arena.LookupMany(paths)
	if err != nil {
		return nil, err
	}
	var idx []int
	for i := range paths {
		if !known(local[i], incoming[i]) {
			idx = append(idx, i)
		}
	}
	sub := make([]realize.Path, len(idx))
	for j, i := range idx {
		sub[j] = paths[i]
	}
	kv, err := ap.Arena.Known()
	if err != nil {
		return nil, err
	}
	rest, err := ap.Arena.PlaceRecords(ctx, sub, func(j int, local []realize.Alternative) (*real.Change, error) {
		i := idx[j]
		in, err := ap.unknownTo(kv, paths[i], incoming[i])
		if err != nil || len(in) == 0 {
			return nil, err
		}
		ch := ap.change(local, in, nil)
		if ch != nil && ch.Fill != nil && !ap.keepReal(paths[i], ch.Result.Meta.Blob) {
			ch.Fill, ch.Unreal = nil, true
		}
		return ch, nil
	})
	for k, j := range rest {
		rest[k] = idx[j]
	}
	return rest, err
}

// known tells whether each incoming version equals or precedes a version
// of rec's frontier: Decide would then change nothing, and recording a
// local change first would only make the local side newer still.
func known(rec *real.Record, incoming []realize.Alternative) bool {
	if rec == nil || len(incoming) == 0 {
		return false
	}
	front := rec.Frontier()
	for _, in := range incoming {
		covered := false
		for _, l := range front {
			if c := in.Version.Compare(l.Version); c == realize.Before || c == realize.Equal {
				covered = true
				break
			}
		}
		if !covered {
			return false
		}
	}
	return true
}

func allIndexes(n int) []int {
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	return all
}

// Incoming returns the versions of e.Path an entry carries: its own and,
// for a conflict, the rest of the frontier it recorded.
func Incoming(e *realize.Entry) []realize.Alternative {
	a := realize.Alternative{Origin: e.Origin, Meta: e.Meta, Version: e.Version}
	switch e.Op {
	case realize.OpRemove, realize.OpRmdir:
		a.Meta = realize.Meta{}
	case realize.OpConflict:
		a.Version = e.Own
		return append([]realize.Alternative{a}, e.Losers...)
	}
	return []realize.Alternative{a}
}

// keepable filters a frontier's others down to those worth keeping.
func keepable(others []realize.Alternative, winner realize.Meta) []realize.Alternative {
	d := Decision{Result: realize.Alternative{Meta: winner}, Others: others}
	return d.Losers()
}

// place decides path against incoming and places the outcome. resolve is
// the resolution entry incoming comes from, if it does: when its version
// is the outcome, the entry recorded here is a resolution too.
func (ap *Applier) place(ctx context.Context, path realize.Path, incoming []realize.Alternative, resolve *realize.Entry) error {
	// Old news (an entry of ours relayed back, one already applied) needs
	// no look at the disk: if the recorded frontier already has every
	// incoming version, deciding under the arena's lock would change
	// nothing either (a local change not recorded yet is only newer).
	if rec, err := ap.Arena.Lookup(path); err == nil && rec != nil && !Decide(rec.Frontier(), incoming).Changed {
		return nil
	}
	var err error
	for range maxAttempts {
		err = ap.Arena.Place(ctx, path, func(local []realize.Alternative) (*real.Change, error) {
			in, err := ap.unknown(path, incoming)
			if err != nil || len(in) == 0 {
				return nil, err
			}
			ch := ap.change(local, in, resolve)
			if ch != nil && ch.Fill != nil && !ap.keepReal(path, ch.Result.Meta.Blob) {
				ch.Fill, ch.Unreal = nil, true
			}
			return ch, nil
		})
		if realize.KindOf(err) != realize.Changed {
			return err
		}
	}
	return err
}

// unknown filters incoming versions down to those this peer has not
// decided before. A version whose origin's counter is within what this
// peer knows of that origin (history.Log.Known) was decided here already,
// and the path's frontier has covered it ever since — unless a deletion
// followed it and the deletion's tombstone was dropped (trimming). Taking
// such a version again would bring the deleted file back, or, where the
// path was created anew since, set a conflict against a deletion that
// happened before it. Everywhere else dropping it changes nothing.
//
// A version carrying the resolution counter (a resolution's, or made on
// top of one) is judged otherwise: its origin's component may be what a
// resolver had seen, not the change that made it, so Known says nothing
// about it. It was decided here if a dropped tombstone of the path covers
// it (real.Arena.Forgotten): what the tombstone would have said. While
// the tombstone is there, Decide orders it as usual.
func (ap *Applier) unknown(path realize.Path, incoming []realize.Alternative) ([]realize.Alternative, error) {
	known, err := ap.Arena.Known()
	if err != nil {
		return nil, err
	}
	return ap.unknownTo(known, path, incoming)
}

// unknownTo is unknown against a known vector read already.
func (ap *Applier) unknownTo(known realize.VersionVector, path realize.Path, incoming []realize.Alternative) ([]realize.Alternative, error) {
	counter := realize.ResolveCounter()
	var out []realize.Alternative
	for _, a := range incoming {
		if a.Version[counter] > 0 {
			forgotten, err := ap.Arena.Forgotten(path, a.Version)
			if err != nil {
				return nil, err
			}
			if !forgotten {
				out = append(out, a)
			}
			continue
		}
		if a.Origin.IsZero() || a.Version[a.Origin] > known[a.Origin] {
			out = append(out, a)
		}
	}
	return out, nil
}

// change turns a decision into what Place does.
func (ap *Applier) change(local, incoming []realize.Alternative, resolve *realize.Entry) *real.Change {
	d := Decide(local, incoming)
	if !d.Changed {
		return nil
	}
	var shown realize.Alternative
	if len(local) > 0 {
		shown = local[0]
	}
	ch := &real.Change{Op: opFor(shown, d.Result), Result: d.Result, Others: d.Others, Losers: d.Losers()}
	if d.Conflict() {
		ch.Own = d.Own
	} else if resolve != nil && d.Result.Version.Compare(resolve.Version) == realize.Equal && d.Result.Origin == resolve.Origin && d.Result.Meta == resolve.Meta {
		ch.Op, ch.Drop = realize.OpResolve, Dropped(resolve)
	}
	if shown.Meta.Kind != realize.KindNone && sameContent(shown.Meta, d.Result.Meta) && shown.Meta.MTime == d.Result.Meta.MTime {
		ch.Keep = true
	} else if d.Result.Meta.Kind == realize.KindFile {
		ch.Fill = ap.filler(d.Result.Meta)
	}
	return ch
}

// keepReal tells whether a file placed at path must be real here: it is
// pinned, or real already (files edited here stay real here), or its
// bytes are here under another name (a rename) or kept aside (a version
// shown again after it lost, or kept by a resolution): they must not be
// dropped, the kept-aside copy goes once placed.
func (ap *Applier) keepReal(path realize.Path, blob realize.Hash) bool {
	if ap.Pinned == nil || ap.Pinned(path) || ap.Arena.HasBlob(blob) {
		return true
	}
	if _, kept := ap.Arena.ConflictBytes(blob); kept {
		return true
	}
	rec, err := ap.Arena.Lookup(path)
	if err != nil {
		return true // let Place report it
	}
	return rec != nil && !rec.Deleted && !rec.IsUnreal()
}

// opFor names the change from local to result for the history entry.
func opFor(local, result realize.Alternative) realize.Op {
	switch {
	case result.Meta.Kind == realize.KindNone && local.Meta.Kind == realize.KindDir:
		return realize.OpRmdir
	case result.Meta.Kind == realize.KindNone:
		return realize.OpRemove
	case result.Meta.Kind == realize.KindDir:
		return realize.OpMkdir
	case result.Meta.Kind == realize.KindSymlink:
		return realize.OpSymlink
	case local.Meta.Kind == realize.KindFile:
		return realize.OpReplace
	}
	return realize.OpAdd
}

// filler returns the content source of a file: a local copy when there is
// one (a rename, a copy, a conflict loser kept aside: no bytes travel),
// else the household.
func (ap *Applier) filler(m realize.Meta) func(ctx context.Context, f *os.File, l *real.Landed) error {
	return func(ctx context.Context, f *os.File, l *real.Landed) error {
		if ok, err := copyVerified(f, ap.Arena, m); ok || err != nil {
			if ok && m.Size <= real.OneBlockMax {
				// Hashed whole while copied: one block, verified.
				l.Blocks(realize.BlockMap{{Hash: m.Blob, Size: uint32(m.Size)}})
				l.Range(0, m.Size)
			}
			return err
		}
		if ap.Fetch == nil {
			return &realize.Error{Op: "fetch", Kind: realize.Unavailable, Arena: ap.Arena.Name(), Err: errors.New("no local copy and no peer to ask")}
		}
		return ap.Fetch.Fetch(ctx, ap.Arena.Name(), m, f, l)
	}
}

// copyVerified fills f from a local copy of the blob, hashing as it copies;
// it reports false (and leaves f empty) when there is no local copy or the
// copy does not match, so the caller fetches from peers instead.
func copyVerified(f *os.File, a *real.Arena, m realize.Meta) (bool, error) {
	src, err := a.OpenBlob(m.Blob)
	if err != nil {
		return false, nil
	}
	defer src.Close()
	if err := f.Truncate(0); err != nil { // f may hold part of an earlier transfer
		return false, err
	}
	h := blake3.New()
	n, err := io.Copy(io.MultiWriter(f, h), src)
	if err == nil && n == m.Size && realize.Hash(h.Sum(nil)) == m.Blob {
		return true, nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return false, err
	}
	return false, f.Truncate(0)
}
