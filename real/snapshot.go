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
}

// Snapshot calls fn with every path the index knows — deleted ones too,
// since a deletion is a version others must order against — and its
// frontier, in key order. It is what a peer whose history was trimmed away
// catches up from.
func (a *Arena) Snapshot(fn func(Snap) error) error {
	var after []byte
	for {
		var page []Snap
		err := a.db.View(func(tx *bolt.Tx) error {
			ix, err := OpenIndex(tx, a.name)
			if err != nil || ix.files == nil {
				return err
			}
			c := ix.files.Cursor()
			k, v := c.First()
			if after != nil {
				if k, v = c.Seek(after); k != nil && string(k) == string(after) {
					k, v = c.Next()
				}
			}
			for ; k != nil && len(page) < snapshotPage; k, v = c.Next() {
				r, err := ix.decode(KeyPath(k), v)
				if err != nil {
					return err
				}
				page = append(page, Snap{Path: KeyPath(k), Frontier: r.Frontier(), Held: r.IsReal()})
				after = append(after[:0], k...)
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
		if len(page) < snapshotPage {
			return nil
		}
	}
}
