package listing

import (
	"github.com/realizefs/realize"
	bolt "go.etcd.io/bbolt"
)

// Mark is the user's choice for a path, inherited by everything below it
// until a deeper mark says otherwise.
type Mark uint8

const (
	Inherit Mark = 0 // no mark of its own
	Pin     Mark = 1 // keep real here
	Unpin   Mark = 2 // may be unreal here
)

func (m Mark) String() string {
	switch m {
	case Pin:
		return "pinned"
	case Unpin:
		return "unpinned"
	}
	return "inherited"
}

// marks/<arena>/<path key> -> one byte
var bucketMarks = []byte("marks")

// SetMark sets (or with Inherit clears) path's own mark. Marks below path
// are cleared: pinning a directory pins all of it.
func SetMark(tx *bolt.Tx, arena realize.ArenaName, path realize.Path, m Mark) error {
	root, err := tx.CreateBucketIfNotExists(bucketMarks)
	if err != nil {
		return err
	}
	ab, err := root.CreateBucketIfNotExists([]byte(arena))
	if err != nil {
		return err
	}
	pk := markKey(path)
	c := ab.Cursor()
	var below [][]byte
	for k, _ := c.Seek(pathKey(path)); k != nil && isUnder(k, pathKey(path)); k, _ = c.Next() {
		below = append(below, append([]byte{}, k...))
	}
	for _, k := range below {
		if err := ab.Delete(k); err != nil {
			return err
		}
	}
	if m == Inherit {
		return nil
	}
	return ab.Put(pk, []byte{byte(m)})
}

// markKey is a path's key in marks; the root, whose path key is empty
// (which bbolt cannot store), gets 0xff, a byte no name starts with.
func markKey(p realize.Path) []byte {
	if p.IsRoot() {
		return []byte{0xff}
	}
	return pathKey(p)
}

func isUnder(k, dir []byte) bool {
	if len(dir) == 0 {
		return true
	}
	return len(k) >= len(dir) && string(k[:len(dir)]) == string(dir) && (len(k) == len(dir) || k[len(dir)] == 0)
}

// Effective returns path's mark as inherited: its own, else its nearest
// ancestor's, else the arena's default. It also names where the mark
// comes from ("" for the default).
func Effective(tx *bolt.Tx, arena realize.ArenaName, path realize.Path, pinnedByDefault bool) (Mark, realize.Path) {
	if root := tx.Bucket(bucketMarks); root != nil {
		if ab := root.Bucket([]byte(arena)); ab != nil {
			for p := path; ; p = p.Dir() {
				if v := ab.Get(markKey(p)); len(v) == 1 && Mark(v[0]) != Inherit {
					return Mark(v[0]), p
				}
				if p.IsRoot() {
					break
				}
			}
		}
	}
	if pinnedByDefault {
		return Pin, ""
	}
	return Unpin, ""
}
