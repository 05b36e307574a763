package real

import (
	"github.com/realizefs/realize"
	bolt "go.etcd.io/bbolt"
)

// snapshotPage bounds the records read in one read transaction, so a
// slow consumer (a peer on the network) does not hold one open long.
const snapshotPage = 1024

// Snap is one path of an arena as a snapshot carries it.
type Snap struct {
	Path     realize.Path
	Frontier []realize.Alternative
	// Held says the snapshot's source keeps the shown version's bytes in
	// its real directory (what its log would have said, entry by entry).
	Held bool
	// Conflicts is the path's conflict bookkeeping (nil: none): the
	// trimmed entries would have named those versions and dropped others.
	Conflicts *ConflictState
}

// Snapshot calls fn with every path the index knows — deleted ones too,
// since a deletion is a version others must order against — and its
// frontier, in key order; then every path with conflict bookkeeping but
// no record (its tombstone trimmed away), with an empty frontier. It is
// what a peer whose history was trimmed away catches up from.
func (a *Arena) Snapshot(fn func(Snap) error) error {
	if err := a.snapshotBucket(bucketFiles, fn); err != nil {
		return err
	}
	// A path can have marks in several of these buckets: each goes once.
	done := map[realize.Path]bool{}
	for _, b := range [][]byte{bucketConfl, bucketDrops, bucketWins} {
		err := a.snapshotBucket(b, func(s Snap) error {
			if done[s.Path] {
				return nil
			}
			done[s.Path] = true
			return fn(s)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// snapshotBucket pages through one bucket of the arena's index. For the
// records bucket it yields every path; for the others, the paths that
// have no record.
func (a *Arena) snapshotBucket(bucket []byte, fn func(Snap) error) error {
	var after []byte
	for {
		var page []Snap
		more := false
		err := a.db.View(func(tx *bolt.Tx) error {
			ix, err := OpenIndex(tx, a.name)
			if err != nil || ix.ab == nil || ix.ab.Bucket(bucket) == nil {
				return err
			}
			c := ix.ab.Bucket(bucket).Cursor()
			k, v := c.First()
			if after != nil {
				if k, v = c.Seek(after); k != nil && string(k) == string(after) {
					k, v = c.Next()
				}
			}
			read := 0
			for ; k != nil; k, v = c.Next() {
				if read++; read > snapshotPage {
					more = true
					break
				}
				after = append(after[:0], k...)
				s, ok, err := ix.snap(bucket, k, v)
				if err != nil {
					return err
				}
				if ok {
					page = append(page, s)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, s := range page {
			if err := fn(s); err != nil {
				return err
			}
		}
		if !more {
			return nil
		}
	}
}

// snap returns the snapshot of the path of key k in bucket, if it is
// one to yield.
func (ix *Index) snap(bucket, k, v []byte) (Snap, bool, error) {
	var s Snap
	if string(bucket) == string(bucketFiles) {
		r, err := ix.decode(KeyPath(k), v)
		if err != nil {
			return s, false, err
		}
		s = Snap{Path: KeyPath(k), Frontier: r.Frontier(), Held: r.IsReal()}
	} else {
		if string(bucket) == string(bucketConfl) {
			if len(k) < 2*32+1 {
				return s, false, ix.corrupt("", errConflictKey)
			}
			k = k[:len(k)-2*32-1]
		}
		s.Path = KeyPath(k)
		if ix.files != nil && ix.files.Get(k) != nil {
			return s, false, nil // yielded with its record
		}
	}
	var err error
	s.Conflicts, err = ix.ConflictState(s.Path)
	return s, true, err
}
