package real

import (
	"bytes"
	"errors"

	"github.com/fxamacker/cbor/v2"
	"github.com/realizefs/realize"
	bolt "go.etcd.io/bbolt"
)

// Conflict records live in index/<arena>/c, keyed by the path key, 0x00,
// the loser's origin and its blob hash, so that recording the same loser
// twice (two peers' conflict entries for one decision) stores it once.
// A record keeps the merged vectors of the decisions that named it a
// loser (its namings, none covering another).
//
// Two other marks per path keep the list a function of the entries seen,
// not of their order (docs/decisions/0015-conflict-resolution.md):
//
//   - Resolutions leave their drop vectors in index/<arena>/r (an
//     antichain). A kept-aside version one of them covers is never listed
//     again, even if an entry naming it arrives later.
//   - Decisions that show a version again leave a win in index/<arena>/w:
//     the version (origin, blob, own vector) and the merged vector of the
//     decision. A version that lost, then won a later decision (the one it
//     lost to was deleted by someone who had not seen it: the edit wins),
//     is what the path shows, not a version kept aside: a naming the win
//     covers (at or below its merged vector) no longer lists it, whether
//     it arrives before or after. A naming the win does not cover — the
//     version lost again to something newer — lists it again.

// Conflict is a version of a path kept aside after losing a conflict.
type Conflict struct {
	Path realize.Path
	realize.Alternative
	// Named are the merged vectors of the decisions that named it a loser
	// and that no later win of it covers.
	Named []realize.VersionVector
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
	Named   []realize.VersionVector
}

// conflictRecordV1 is a record written before namings were kept.
type conflictRecordV1 struct {
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

// Decided is what a decision about a path says about its conflict list:
// the versions it kept aside, and the one the path shows, at the merge of
// its frontier.
type Decided struct {
	Winner realize.Alternative // under its own vector
	Losers []realize.Alternative
	At     realize.VersionVector
}

// PutConflicts records losers a decision at p named, at the merged
// vector at, except those a resolution at p dropped or a later win of the
// same version covers.
func (ix *Index) PutConflicts(p realize.Path, losers []realize.Alternative, at realize.VersionVector) error {
	if len(losers) == 0 {
		return nil
	}
	dropped, err := ix.Dropped(p)
	if err != nil {
		return err
	}
	wins, err := ix.Wins(p)
	if err != nil {
		return err
	}
	b := ix.ab.Bucket(bucketConfl)
	for _, l := range losers {
		if covered(dropped, l.Version) || wonSince(wins, l, at) {
			continue
		}
		rec := &conflictRecord{Origin: l.Origin, Meta: l.Meta, Version: l.Version}
		if raw := b.Get(conflictKey(p, l)); raw != nil {
			if rec, err = ix.decodeRecord(p, raw); err != nil {
				return err
			}
			if l.Version.Compare(rec.Version) == realize.After {
				rec.Version = l.Version // the same content, made again later by its origin
			}
		}
		if !addMaximal(&rec.Named, at) {
			continue
		}
		if err := ix.putRecord(p, l, rec); err != nil {
			return err
		}
	}
	return nil
}

func (ix *Index) putRecord(p realize.Path, a realize.Alternative, rec *conflictRecord) error {
	raw, err := cbor.Marshal(rec)
	if err != nil {
		return err
	}
	return ix.ab.Bucket(bucketConfl).Put(conflictKey(p, a), raw)
}

// Conflicts lists the versions kept aside for paths under dir ("" = all).
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
		out = append(out, Conflict{Path: path, Named: r.Named,
			Alternative: realize.Alternative{Origin: r.Origin, Meta: r.Meta, Version: r.Version}})
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
	r, err := ix.decodeRecord(KeyPath(k[:i]), v)
	return KeyPath(k[:i]), r, err
}

// decodeRecord reads a conflict record of either layout. A record from
// before namings were kept counts as named at its own vector: any win of
// the version ends its listing (as the list used to hide a version the
// path showed).
func (ix *Index) decodeRecord(p realize.Path, v []byte) (*conflictRecord, error) {
	var r conflictRecord
	err := cbor.Unmarshal(v, &r)
	if err == nil {
		return &r, nil
	}
	var old conflictRecordV1
	if cbor.Unmarshal(v, &old) != nil {
		return nil, ix.corrupt(p, err)
	}
	return &conflictRecord{Origin: old.Origin, Meta: old.Meta, Version: old.Version,
		Named: []realize.VersionVector{old.Version}}, nil
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

// addMaximal adds v to the antichain set unless a member covers it,
// removing the members v covers; it reports whether set changed.
func addMaximal(set *[]realize.VersionVector, v realize.VersionVector) bool {
	if covered(*set, v) {
		return false
	}
	keep := []realize.VersionVector{v}
	for _, o := range *set {
		if o.Compare(v) != realize.Before {
			keep = append(keep, o)
		}
	}
	*set = keep
	return true
}

var errConflictKey = errors.New("conflict key too short")

// RecordConflicts records what a decision made elsewhere (another peer's
// entry, a snapshot's frontier) says about path: the losers it names are
// listed, unless dropped or won since, and the version it shows stops
// being listed where the decision covers what named it. Every peer keeps
// the same list whatever it did with the decision (took it, or knew
// something newer). The bytes of versions no longer listed are freed, but
// for keep, the content about to be placed (FreeKept lets go of it once
// placed).
func (a *Arena) RecordConflicts(path realize.Path, d Decided, keep realize.Hash) error {
	if len(d.Losers) == 0 && d.Winner.Meta.Kind == realize.KindNone {
		return nil
	}
	return a.updateFreeing(keep, func(ix *Index) ([]realize.Hash, error) {
		gone, err := ix.PutWin(path, d.Winner, d.At)
		if err != nil {
			return nil, err
		}
		return gone, ix.PutConflicts(path, d.Losers, d.At)
	})
}

// updateFreeing changes the conflict bookkeeping under the arena's lock,
// in one transaction: fn returns the blobs of versions no longer listed,
// whose kept-aside bytes are then freed — but for keep, the content about
// to be placed.
func (a *Arena) updateFreeing(keep realize.Hash, fn func(ix *Index) ([]realize.Hash, error)) error {
	a.lockScan()
	defer a.scanMu.Unlock()
	var gone []realize.Hash
	err := a.db.Update(func(tx *bolt.Tx) error {
		ix, err := OpenIndex(tx, a.name)
		if err != nil {
			return err
		}
		gone, err = fn(ix)
		return err
	})
	if err != nil {
		return err
	}
	return a.freeKept(except(gone, keep))
}

// except returns blobs without keep.
func except(blobs []realize.Hash, keep realize.Hash) []realize.Hash {
	out := blobs[:0]
	for _, h := range blobs {
		if h != keep {
			out = append(out, h)
		}
	}
	return out
}
