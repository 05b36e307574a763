package real

import (
	"fmt"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/history"
	"github.com/realizefs/realize/internal/store"
	bolt "go.etcd.io/bbolt"
)

// CheckAgainstHistory replays a peer's own history of an arena from its
// first retained entry and compares the outcome with the index. It fails
// when:
//
//   - a live index record is not what the last entry for its path says
//     (something indexed but not recorded — when the log is not trimmed —
//     or recorded but not indexed);
//   - a path whose last entry is a removal is still live in the index;
//   - the same state was recorded twice in a row for a path (a rename or
//     a conflict, which change the version alone, aside);
//   - a live file's blob record is missing or its blocks do not add up;
//   - a blob's reference count is not the number of live records using it
//     (blobs are shared by every arena of the peer, so all arenas count).
//
// Tests use it after crashes; it is also cheap enough for a support tool.
func CheckAgainstHistory(db *store.DB, arena realize.ArenaName, log *history.Log, self realize.PeerID) error {
	return db.View(func(tx *bolt.Tx) error {
		want, err := replay(tx, arena, log, self)
		if err != nil {
			return err
		}
		// A trimmed log no longer says where the paths it does not
		// mention came from: only what it still holds is checked.
		first, _, err := log.Retained(tx, arena, self)
		if err != nil {
			return err
		}
		complete := first <= 1
		ix, err := OpenIndex(tx, arena)
		if err != nil {
			return err
		}
		if err := checkRefs(tx, ix); err != nil {
			return err
		}
		return ix.Walk("", func(p realize.Path, r *Record) error {
			m, ok := want[p]
			delete(want, p)
			switch {
			case !ok && live(r) && complete:
				return fmt.Errorf("%s: in the index but never recorded", p)
			case !ok || m == nil && !live(r):
				return nil
			case m == nil:
				return fmt.Errorf("%s: removed in history but live in the index", p)
			case !live(r):
				return fmt.Errorf("%s: live in history but a tombstone in the index", p)
			case m.Meta != r.Meta:
				return fmt.Errorf("%s: index has %+v, history says %+v", p, r.Meta, m.Meta)
			case m.Unreal != r.Unreal:
				return fmt.Errorf("%s: index says unreal=%v, history says %v", p, r.Unreal, m.Unreal)
			}
			return checkBlob(ix, p, r)
		})
	})
}

// state is what the log says a path holds.
type state struct {
	Meta   realize.Meta
	Unreal bool
}

// replay returns the state each path reached in the log, or nil when the
// last entry removed it.
func replay(tx *bolt.Tx, arena realize.ArenaName, log *history.Log, self realize.PeerID) (map[realize.Path]*state, error) {
	want := map[realize.Path]*state{}
	err := log.Scan(tx, arena, self, 0, func(e *realize.Entry, _ realize.Hash) error {
		switch {
		case e.Op == realize.OpRemove || e.Op == realize.OpRmdir || e.Meta.Kind == realize.KindNone:
			// A deletion that won a conflict, or that a resolution kept,
			// removes the path too.
			want[e.Path] = nil
			return nil
		case e.Op == realize.OpRename:
			want[e.From] = nil
		}
		m := state{Meta: e.Meta, Unreal: e.Unreal}
		// A conflict the local version won, and a resolution keeping what
		// the path shows, record the same state again on purpose.
		again := e.Op == realize.OpRename || e.Op == realize.OpConflict || e.Op == realize.OpResolve
		if prev := want[e.Path]; prev != nil && *prev == m && !again {
			return fmt.Errorf("%s: the same state recorded twice (entry %d)", e.Path, e.Seq)
		}
		want[e.Path] = &m
		return nil
	})
	return want, err
}

// checkRefs compares every blob's reference count with the live records of
// all arenas that use it.
func checkRefs(tx *bolt.Tx, ix *Index) error {
	uses := map[realize.Hash]uint64{}
	if root := tx.Bucket(bucketIndex); root != nil {
		err := root.ForEachBucket(func(name []byte) error {
			other, err := OpenIndex(tx, realize.ArenaName(name))
			if err != nil {
				return err
			}
			return other.Walk("", func(_ realize.Path, r *Record) error {
				if r.IsReal() {
					uses[r.Meta.Blob]++
				}
				return nil
			})
		})
		if err != nil {
			return err
		}
	}
	err := ix.ForEachBlob(func(h realize.Hash, refs uint64) error {
		if uses[h] != refs {
			return fmt.Errorf("blob %s: %d references recorded, %d live records use it", h.Short(), refs, uses[h])
		}
		delete(uses, h)
		return nil
	})
	for h, n := range uses {
		return fmt.Errorf("blob %s: used by %d live records but has no record", h.Short(), n)
	}
	return err
}

func checkBlob(ix *Index, p realize.Path, r *Record) error {
	if !r.IsReal() {
		return nil
	}
	found := false
	for _, q := range ix.PathsOf(r.Meta.Blob) {
		found = found || q == p
	}
	if !found {
		return fmt.Errorf("%s: missing from the paths of blob %s", p, r.Meta.Blob.Short())
	}
	size, refs, blocks, err := ix.Blob(r.Meta.Blob)
	if err != nil {
		return err
	}
	var sum int64
	for _, b := range blocks {
		sum += int64(b.Size)
	}
	if refs == 0 || size != r.Meta.Size || sum != size {
		return fmt.Errorf("%s: blob %s record: size %d, refs %d, blocks add to %d; file size %d",
			p, r.Meta.Blob.Short(), size, refs, sum, r.Meta.Size)
	}
	return nil
}
