package real

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"

	"github.com/fxamacker/cbor/v2"
	"github.com/realizefs/realize"
	bolt "go.etcd.io/bbolt"
)

// What leaves the conflicts list, and when kept-aside bytes go: drop
// vectors of resolutions (bucket r), wins of versions shown again
// (bucket w), and, for a peer catching up by snapshot, the union of its
// own marks with the source's (ConflictState). See conflicts.go.

var (
	bucketDrops = []byte("r")
	bucketWins  = []byte("w")
)

// Win is a decision that showed a version of a path: the version (its
// origin, blob and own vector) and the merged vectors of the frontiers it
// won in (none covering another).
type Win struct {
	_      struct{} `cbor:",toarray"`
	Origin realize.PeerID
	Blob   realize.Hash
	Own    realize.VersionVector
	At     []realize.VersionVector
}

func (w *Win) is(a realize.Alternative) bool {
	return w.Origin == a.Origin && w.Blob == a.Meta.Blob && w.Own.Compare(a.Version) == realize.Equal
}

// wonSince tells whether a win of version l covers a naming at vector at:
// l was shown by a decision that knew at least as much.
func wonSince(wins []Win, l realize.Alternative, at realize.VersionVector) bool {
	for i := range wins {
		if wins[i].is(l) && covered(wins[i].At, at) {
			return true
		}
	}
	return false
}

// Wins returns the wins recorded at p.
func (ix *Index) Wins(p realize.Path) ([]Win, error) {
	var out []Win
	return out, ix.getMarks(bucketWins, p, &out)
}

// PutWin records that a decision showed version w (under its own vector)
// at p, at the merged vector at, and ends the listing of that version by
// the namings the win covers. It returns the blob of a record deleted.
func (ix *Index) PutWin(p realize.Path, w realize.Alternative, at realize.VersionVector) ([]realize.Hash, error) {
	if w.Meta.Kind == realize.KindNone {
		return nil, nil // a deletion is never kept aside
	}
	wins, err := ix.Wins(p)
	if err != nil {
		return nil, err
	}
	i := 0
	for i < len(wins) && !wins[i].is(w) {
		i++
	}
	if i == len(wins) {
		wins = append(wins, Win{Origin: w.Origin, Blob: w.Meta.Blob, Own: w.Version})
	}
	if !addMaximal(&wins[i].At, at) {
		return nil, nil // a win known already: namings it covers were never kept
	}
	if err := ix.putMarks(bucketWins, p, wins); err != nil {
		return nil, err
	}
	key := conflictKey(p, w)
	raw := ix.ab.Bucket(bucketConfl).Get(key)
	if raw == nil {
		return nil, nil
	}
	rec, err := ix.decodeRecord(p, raw)
	if err != nil || rec.Version.Compare(w.Version) != realize.Equal {
		return nil, err
	}
	var named []realize.VersionVector
	for _, n := range rec.Named {
		if !covered([]realize.VersionVector{at}, n) {
			named = append(named, n)
		}
	}
	if len(named) > 0 {
		rec.Named = named
		return nil, ix.putRecord(p, w, rec)
	}
	return []realize.Hash{w.Meta.Blob}, ix.ab.Bucket(bucketConfl).Delete(key)
}

// Drop records a resolution at p that drops every kept-aside version d
// covers, and deletes their records. It returns the blobs of the records
// deleted.
func (ix *Index) Drop(p realize.Path, d realize.VersionVector) ([]realize.Hash, error) {
	if ix.files == nil {
		return nil, errors.New("index: write in a read-only transaction")
	}
	dropped, err := ix.Dropped(p)
	if err != nil {
		return nil, err
	}
	if addMaximal(&dropped, d) {
		if err := ix.putMarks(bucketDrops, p, dropped); err != nil {
			return nil, err
		}
	}
	var gone []realize.Hash
	b := ix.ab.Bucket(bucketConfl)
	prefix := append(PathKey(p), 0)
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		path, r, err := ix.decodeConflict(k, v)
		if err != nil {
			return nil, err
		}
		if path != p || !covered([]realize.VersionVector{d}, r.Version) {
			continue
		}
		if err := c.Delete(); err != nil {
			return nil, err
		}
		gone = append(gone, r.Meta.Blob)
	}
	return gone, nil
}

// Dropped returns the vectors resolutions at p dropped.
func (ix *Index) Dropped(p realize.Path) ([]realize.VersionVector, error) {
	var out []realize.VersionVector
	return out, ix.getMarks(bucketDrops, p, &out)
}

func (ix *Index) getMarks(bucket []byte, p realize.Path, out any) error {
	if ix.ab == nil || ix.ab.Bucket(bucket) == nil {
		return nil
	}
	raw := ix.ab.Bucket(bucket).Get(PathKey(p))
	if raw == nil {
		return nil
	}
	if err := cbor.Unmarshal(raw, out); err != nil {
		return ix.corrupt(p, err)
	}
	return nil
}

func (ix *Index) putMarks(bucket []byte, p realize.Path, v any) error {
	raw, err := cbor.Marshal(v)
	if err != nil {
		return err
	}
	return ix.ab.Bucket(bucket).Put(PathKey(p), raw)
}

// ConflictState is a path's conflict bookkeeping as a snapshot carries
// it: the versions kept aside with their namings, the drop vectors and
// the wins. Merging another peer's state into one's own (MergeConflicts)
// gives the list both would have from the union of their entries.
type ConflictState struct {
	Kept  []Conflict
	Drops []realize.VersionVector
	Wins  []Win
}

// Empty tells whether there is nothing in the state.
func (s *ConflictState) Empty() bool {
	return s == nil || len(s.Kept) == 0 && len(s.Drops) == 0 && len(s.Wins) == 0
}

// ConflictState returns p's conflict bookkeeping (nil when empty).
func (ix *Index) ConflictState(p realize.Path) (*ConflictState, error) {
	var s ConflictState
	var err error
	if s.Kept, err = ix.ConflictsAt(p); err != nil {
		return nil, err
	}
	if s.Drops, err = ix.Dropped(p); err != nil {
		return nil, err
	}
	if s.Wins, err = ix.Wins(p); err != nil {
		return nil, err
	}
	if s.Empty() {
		return nil, nil
	}
	return &s, nil
}

// MergeConflicts merges another peer's conflict bookkeeping of path into
// this one's (a snapshot: its entries were trimmed away), then frees the
// bytes of versions no longer listed but for keep (see RecordConflicts).
func (a *Arena) MergeConflicts(path realize.Path, s *ConflictState, keep realize.Hash) error {
	if s.Empty() {
		return nil
	}
	return a.updateFreeing(keep, func(ix *Index) ([]realize.Hash, error) {
		var gone []realize.Hash
		for _, d := range s.Drops {
			g, err := ix.Drop(path, d)
			if err != nil {
				return nil, err
			}
			gone = append(gone, g...)
		}
		for _, w := range s.Wins {
			for _, at := range w.At {
				g, err := ix.PutWin(path, realize.Alternative{Origin: w.Origin, Meta: realize.Meta{Kind: realize.KindFile, Blob: w.Blob}, Version: w.Own}, at)
				if err != nil {
					return nil, err
				}
				gone = append(gone, g...)
			}
		}
		for _, k := range s.Kept {
			for _, at := range k.Named {
				if err := ix.PutConflicts(path, []realize.Alternative{k.Alternative}, at); err != nil {
					return nil, err
				}
			}
		}
		return gone, nil
	})
}

// Drop records, in its own transaction, a resolution at path that drops
// the kept-aside versions d covers (a resolution another peer made: see
// consensus), then frees the bytes of those versions kept here unless
// another kept-aside version still needs them. keep names a blob to leave
// in place for now (the content the resolution puts at the path, not
// placed yet); FreeKept lets go of it once placed.
func (a *Arena) Drop(path realize.Path, d realize.VersionVector, keep realize.Hash) error {
	return a.updateFreeing(keep, func(ix *Index) ([]realize.Hash, error) { return ix.Drop(path, d) })
}

// FreeKept lets go of the bytes of blob kept aside here if no kept-aside
// version needs them any more.
func (a *Arena) FreeKept(blob realize.Hash) error {
	a.lockScan()
	defer a.scanMu.Unlock()
	return a.freeKept([]realize.Hash{blob})
}

// SweepKept frees every kept-aside file no kept-aside version names: the
// bytes of a version whose listing ended while its content was being
// placed (and the placement then failed for good), or anything left by a
// crash between the two. Nothing is moved aside without the arena's
// lock, which this holds.
func (a *Arena) SweepKept() (int, error) {
	a.lockScan()
	defer a.scanMu.Unlock()
	ents, err := os.ReadDir(filepath.Join(a.root, ConflictDir))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, nil
		}
		return 0, &realize.Error{Op: "sweep conflict bytes", Kind: realize.IO, Arena: a.name, Err: err}
	}
	var blobs []realize.Hash
	for _, e := range ents {
		if h, err := realize.ParseHash(e.Name()); err == nil {
			blobs = append(blobs, h)
		}
	}
	before := len(ents)
	if err := a.freeKept(blobs); err != nil {
		return 0, err
	}
	after, _ := os.ReadDir(filepath.Join(a.root, ConflictDir))
	return before - len(after), nil
}

// freeKept removes the ConflictDir copies of blobs that no kept-aside
// version of the arena names any more. The caller holds scanMu, so no
// placement moves a loser aside meanwhile.
func (a *Arena) freeKept(blobs []realize.Hash) error {
	dir := filepath.Join(a.root, ConflictDir)
	removed := false
	for _, h := range blobs {
		if h.IsZero() {
			continue
		}
		if _, ok := a.ConflictBytes(h); !ok {
			continue
		}
		var needed bool
		err := a.db.View(func(tx *bolt.Tx) error {
			ix, err := OpenIndex(tx, a.name)
			if err == nil {
				needed, err = ix.KeepsBlob(h)
			}
			return err
		})
		if err != nil {
			return err
		}
		if needed {
			continue
		}
		if err := os.Remove(filepath.Join(dir, h.String())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return &realize.Error{Op: "free conflict bytes", Kind: realize.IO, Arena: a.name, Err: err}
		}
		removed = true
	}
	if !removed {
		return nil
	}
	if ents, err := os.ReadDir(dir); err == nil && len(ents) == 0 && os.Remove(dir) == nil {
		return syncDir(a.root) // an empty ConflictDir is clutter
	}
	return syncDir(dir)
}
