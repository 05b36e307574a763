package real

import (
	"context"

	"github.com/realizefs/realize"
	bolt "go.etcd.io/bbolt"
)

// Tombstones are the records of removed paths: they keep a deletion's
// version so that an older version arriving later is recognised as older.
// Once every peer has the deletion and this peer has decided every change
// the deletion followed, nothing older can arrive any more without being
// recognised by history.Log.Known, and the tombstone can go
// (docs/decisions/0016-history-trimming.md). Which ones may go is the
// caller's decision (consensus.Trimmer); this file only removes them.
//
// One kind of version escapes history.Log.Known: a resolution's
// (realize.ResolveCounter), whose vector says what the resolver had seen,
// not which entry made it. A dropped tombstone whose version carries the
// resolution counter leaves its vector in index/<arena>/g (per path, none
// covering another), and such a version is recognised as decided when one
// of them covers it: exactly what the tombstone would have said.

var bucketGone = []byte("g")

// tombstonePage bounds the records read, or removed, per transaction.
const tombstonePage = 1024

// DropTombstones removes the tombstones for which drop returns true and
// returns how many went. drop is asked again under the arena's lock right
// before each removal, against the record as it is then, so a path that
// came back meanwhile is left alone. drop must not touch the database.
func (a *Arena) DropTombstones(ctx context.Context, drop func(realize.Path, *Record) bool) (int, error) {
	var after []byte
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		var candidates []realize.Path
		more := false
		err := a.db.View(func(tx *bolt.Tx) error {
			ix, err := OpenIndex(tx, a.name)
			if err != nil || ix.files == nil {
				return err
			}
			c := ix.files.Cursor()
			k, v := c.First()
			if after != nil {
				k, v = c.Seek(append(append([]byte{}, after...), 0))
			}
			read := 0
			for ; k != nil; k, v = c.Next() {
				if read++; read > tombstonePage {
					more = true
					break
				}
				after = append(after[:0], k...)
				r, err := ix.decode(KeyPath(k), v)
				if err != nil {
					return err
				}
				if r.Deleted && drop(KeyPath(k), r) {
					candidates = append(candidates, KeyPath(k))
				}
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		n, err := a.dropTombstones(candidates, drop)
		total += n
		if err != nil || !more {
			return total, err
		}
	}
}

// dropTombstones removes the candidates that are still droppable tombstones.
func (a *Arena) dropTombstones(paths []realize.Path, drop func(realize.Path, *Record) bool) (int, error) {
	if len(paths) == 0 {
		return 0, nil
	}
	a.lockScan()
	defer a.scanMu.Unlock()
	n := 0
	err := a.db.Update(func(tx *bolt.Tx) error {
		n = 0
		ix, err := OpenIndex(tx, a.name)
		if err != nil {
			return err
		}
		for _, p := range paths {
			r, err := ix.Get(p)
			if err != nil {
				return err
			}
			if r == nil || !r.Deleted || !drop(p, r) {
				continue
			}
			if err := ix.files.Delete(PathKey(p)); err != nil {
				return err
			}
			if err := ix.forget(p, r.Version); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// forget keeps the vector of a dropped tombstone that carries the
// resolution counter.
func (ix *Index) forget(p realize.Path, v realize.VersionVector) error {
	if v[realize.ResolveCounter()] == 0 {
		return nil
	}
	gone, err := ix.Gone(p)
	if err != nil || !addMaximal(&gone, v) {
		return err
	}
	return ix.putMarks(bucketGone, p, gone)
}

// Gone returns the vectors of the dropped tombstones at p that carried
// the resolution counter.
func (ix *Index) Gone(p realize.Path) ([]realize.VersionVector, error) {
	var out []realize.VersionVector
	return out, ix.getMarks(bucketGone, p, &out)
}

// Forgotten tells whether the tombstone of path was dropped after it
// covered v (a version carrying the resolution counter): v was decided
// here, and the deletion followed it.
func (a *Arena) Forgotten(path realize.Path, v realize.VersionVector) (bool, error) {
	var gone []realize.VersionVector
	err := a.db.View(func(tx *bolt.Tx) error {
		ix, err := OpenIndex(tx, a.name)
		if err == nil {
			gone, err = ix.Gone(path)
		}
		return err
	})
	return covered(gone, v), err
}

// Known returns how far this peer's index reflects each peer's changes
// (history.Log.Known).
func (a *Arena) Known() (realize.VersionVector, error) {
	var kv realize.VersionVector
	err := a.db.View(func(tx *bolt.Tx) (err error) {
		kv, err = a.log.Known(tx, a.name)
		return err
	})
	return kv, err
}
