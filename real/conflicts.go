package real

import (
	"bytes"
	"errors"

	"github.com/fxamacker/cbor/v2"
	"github.com/realizefs/realize"
)

// Conflict records live in index/<arena>/c, keyed by the path key, 0x00,
// the loser's origin and its blob hash, so that recording the same loser
// twice (two peers' conflict entries for one decision) stores it once.

// Conflict is a version of a path kept aside after losing a conflict.
type Conflict struct {
	Path realize.Path
	realize.Alternative
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

// PutConflicts records losers of a conflict at p.
func (ix *Index) PutConflicts(p realize.Path, losers []realize.Alternative) error {
	b := ix.ab.Bucket(bucketConfl)
	for _, l := range losers {
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
		i := len(k) - 2*32 - 1
		if i < 0 {
			return nil, ix.corrupt("", errConflictKey)
		}
		var r conflictRecord
		if err := cbor.Unmarshal(v, &r); err != nil {
			return nil, ix.corrupt(KeyPath(k[:i]), err)
		}
		path := KeyPath(k[:i])
		if cur, err := ix.Get(path); err != nil {
			return nil, err
		} else if live(cur) && cur.Meta.Kind == r.Meta.Kind && cur.Meta.Blob == r.Meta.Blob && cur.Meta.Target == r.Meta.Target {
			continue
		}
		out = append(out, Conflict{Path: path, Alternative: realize.Alternative{Origin: r.Origin, Meta: r.Meta, Version: r.Version}})
	}
	return out, nil
}

var errConflictKey = errors.New("conflict key too short")
