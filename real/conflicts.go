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

// Conflict records live in index/<arena>/c, keyed by the path key, 0x00,
// the loser's origin and its blob hash, so that recording the same loser
// twice (two peers' conflict entries for one decision) stores it once.
//
// Resolutions leave their mark in index/<arena>/r, keyed by the path key:
// the vectors of the versions dropped at that path (an antichain: a vector
// another one covers is not kept). A kept-aside version that one of them
// covers is never listed again, even if an entry naming it arrives later
// (relayed, or applied in another order): the list is a function of the
// entries seen, not of their order.

// Conflict is a version of a path kept aside after losing a conflict.
type Conflict struct {
	Path realize.Path
	realize.Alternative
}

// VersionName is how people name a version of a path: the origin's short
// id and the short hash of the content ("1a2b3c4d-5e6f7a8b9c0d"), as
// `realize conflicts` lists it and conflicts/ in the mount shows it (with
// the path's extension). A version without bytes is named by its kind.
func VersionName(a realize.Alternative) string {
	what := a.Meta.Blob.Short()
	if a.Meta.Kind != realize.KindFile {
		what = a.Meta.Kind.String()
		if a.Meta.Kind == realize.KindNone {
			what = "deleted"
		}
	}
	return a.Origin.Short() + "-" + what
}

type conflictRecord struct {
	_       struct{} `cbor:",toarray"`
	Origin  realize.PeerID
	Meta    realize.Meta
	Version realize.VersionVector
}

func conflictKey(p realize.Path, a realize.Alternative) []byte {
	k := append(PathKey(p), 0)
	k = append(k, a.Origin[:]...)
	return append(k, a.Meta.Blob[:]...)
}

// PutConflicts records losers of a conflict at p, except those a
// resolution at p dropped already.
func (ix *Index) PutConflicts(p realize.Path, losers []realize.Alternative) error {
	if len(losers) == 0 {
		return nil
	}
	dropped, err := ix.Dropped(p)
	if err != nil {
		return err
	}
	b := ix.ab.Bucket(bucketConfl)
	for _, l := range losers {
		if covered(dropped, l.Version) {
			continue
		}
		raw, err := cbor.Marshal(conflictRecord{Origin: l.Origin, Meta: l.Meta, Version: l.Version})
		if err != nil {
			return err
		}
		if err := b.Put(conflictKey(p, l), raw); err != nil {
			return err
		}
	}
	return nil
}

// Conflicts lists the versions kept aside for paths under dir ("" = all),
// leaving out any whose content is what the path holds now (a version that
// lost in one peer's order of events and won once more became known).
func (ix *Index) Conflicts(dir realize.Path) ([]Conflict, error) {
	if ix.ab == nil || ix.ab.Bucket(bucketConfl) == nil {
		return nil, nil
	}
	var out []Conflict
	prefix := PathKey(dir)
	c := ix.ab.Bucket(bucketConfl).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if len(prefix) > 0 && k[len(prefix)] != 0 {
			continue // "ab" while listing "a"
		}
		path, r, err := ix.decodeConflict(k, v)
		if err != nil {
			return nil, err
		}
		if cur, err := ix.Get(path); err != nil {
			return nil, err
		} else if live(cur) && cur.Meta.Kind == r.Meta.Kind && cur.Meta.Blob == r.Meta.Blob && cur.Meta.Target == r.Meta.Target {
			continue
		}
		out = append(out, Conflict{Path: path, Alternative: realize.Alternative{Origin: r.Origin, Meta: r.Meta, Version: r.Version}})
	}
	return out, nil
}

// ConflictsAt lists the versions kept aside for exactly path p.
func (ix *Index) ConflictsAt(p realize.Path) ([]Conflict, error) {
	all, err := ix.Conflicts(p)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, c := range all {
		if c.Path == p {
			out = append(out, c)
		}
	}
	return out, nil
}

func (ix *Index) decodeConflict(k, v []byte) (realize.Path, *conflictRecord, error) {
	i := len(k) - 2*32 - 1
	if i < 0 {
		return "", nil, ix.corrupt("", errConflictKey)
	}
	var r conflictRecord
	if err := cbor.Unmarshal(v, &r); err != nil {
		return "", nil, ix.corrupt(KeyPath(k[:i]), err)
	}
	return KeyPath(k[:i]), &r, nil
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
	if !covered(dropped, d) {
		keep := []realize.VersionVector{d}
		for _, o := range dropped {
			if o.Compare(d) != realize.Before {
				keep = append(keep, o)
			}
		}
		raw, err := cbor.Marshal(keep)
		if err != nil {
			return nil, err
		}
		if err := ix.ab.Bucket(bucketDrops).Put(PathKey(p), raw); err != nil {
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
	if ix.ab == nil || ix.ab.Bucket(bucketDrops) == nil {
		return nil, nil
	}
	raw := ix.ab.Bucket(bucketDrops).Get(PathKey(p))
	if raw == nil {
		return nil, nil
	}
	var out []realize.VersionVector
	if err := cbor.Unmarshal(raw, &out); err != nil {
		return nil, ix.corrupt(p, err)
	}
	return out, nil
}

// KeepsBlob tells whether any version kept aside in this arena has blob.
func (ix *Index) KeepsBlob(blob realize.Hash) (bool, error) {
	if ix.ab == nil || ix.ab.Bucket(bucketConfl) == nil {
		return false, nil
	}
	found := false
	err := ix.ab.Bucket(bucketConfl).ForEach(func(k, _ []byte) error {
		found = found || len(k) >= 32 && bytes.Equal(k[len(k)-32:], blob[:])
		return nil
	})
	return found, err
}

// covered tells whether some vector of ds covers v (v is before or equal).
func covered(ds []realize.VersionVector, v realize.VersionVector) bool {
	for _, d := range ds {
		if o := v.Compare(d); o == realize.Before || o == realize.Equal {
			return true
		}
	}
	return false
}

var errConflictKey = errors.New("conflict key too short")

// Drop records, in its own transaction, a resolution at path that drops
// the kept-aside versions d covers (a resolution another peer made: see
// consensus), then frees the bytes of those versions kept here unless
// another kept-aside version still needs them. keep names a blob to leave
// in place for now (the content the resolution puts at the path, not
// placed yet); FreeKept lets go of it once placed.
func (a *Arena) Drop(path realize.Path, d realize.VersionVector, keep realize.Hash) error {
	a.scanMu.Lock()
	defer a.scanMu.Unlock()
	var gone []realize.Hash
	err := a.db.Update(func(tx *bolt.Tx) error {
		ix, err := OpenIndex(tx, a.name)
		if err != nil {
			return err
		}
		gone, err = ix.Drop(path, d)
		return err
	})
	if err != nil {
		return err
	}
	for i, h := range gone {
		if h == keep {
			gone[i] = realize.Hash{}
		}
	}
	return a.freeKept(gone)
}

// FreeKept lets go of the bytes of blob kept aside here if no kept-aside
// version needs them any more.
func (a *Arena) FreeKept(blob realize.Hash) error {
	a.scanMu.Lock()
	defer a.scanMu.Unlock()
	return a.freeKept([]realize.Hash{blob})
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
