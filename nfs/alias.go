package nfs

import (
	"context"
	"encoding/binary"
	"strings"

	"github.com/realizefs/realize"
	bolt "go.etcd.io/bbolt"
)

// Old names that still answer, in the all-files view only.
//
// A person who renames a directory through an overlay mount leaves the
// kernel holding the lower layer's directory under its old name: overlayfs
// keeps the lower dentry it found, and checks it again (an NFS LOOKUP of
// the old name) whenever the parent directory changes. If the old name is
// gone, or names something else, overlayfs answers "stale file handle" for
// the renamed directory, and goes on doing so for as long as it caches it.
// So after such a move the all-files view keeps answering a LOOKUP of the
// old name with the moved directory's handle — only while the real
// directory hides the old name (the whiteout the kernel left there, which
// the indexer keeps), so no fresh lookup through the mount ever sees it,
// and never in listings. Once something else is at the old name, or the
// whiteout is gone, the alias is dropped.

// Hider is what an Arena may also implement: Hidden tells whether the real
// directory hides path from the mount (an overlay whiteout).
type Hider interface {
	Hidden(ctx context.Context, path realize.Path) bool
}

// addAlias makes export path from answer with the id now at to.
func addAlias(tx *bolt.Tx, from, to string) error {
	b := tx.Bucket(bucketNFS)
	al := b.Bucket(bucketAliases)
	if al == nil {
		var err error
		if al, err = b.CreateBucket(bucketAliases); err != nil {
			return err
		}
	}
	_, paths := buckets(tx)
	id := paths.Get(pkey(to))
	if id == nil {
		return nil // never shown: no kernel holds it
	}
	return al.Put(pkey(from), id)
}

// alias returns the export path export path xp stands for, if xp is an
// old name that still answers: an alias is kept for it, nothing is at xp,
// and the real directory hides it. An alias that no longer holds is
// dropped.
func (s *Server) alias(ctx context.Context, xp string) (string, bool) {
	var id uint64
	err := s.handles.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketNFS); b != nil {
			if al := b.Bucket(bucketAliases); al != nil {
				if v := al.Get(pkey(xp)); len(v) == 8 {
					id = binary.BigEndian.Uint64(v)
				}
			}
		}
		return nil
	})
	if err != nil || id == 0 {
		return "", false
	}
	to, ok, err := s.handles.path(id)
	if err == nil && ok && s.hidden(ctx, xp) {
		if _, err := s.resolve(ctx, xp); err != nil {
			return to, true
		}
	}
	s.dropAlias(xp)
	return "", false
}

// hidden asks xp's arena whether its real directory hides xp.
func (s *Server) hidden(ctx context.Context, xp string) bool {
	arena, rest, _ := strings.Cut(xp, "/")
	a, ok := s.arena(arena).(Hider)
	if !ok || rest == "" {
		return false
	}
	p, err := realize.ParsePath(rest)
	return err == nil && a.Hidden(ctx, p)
}

func (s *Server) dropAlias(xp string) {
	err := s.handles.db.Update(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketNFS); b != nil {
			if al := b.Bucket(bucketAliases); al != nil {
				return al.Delete(pkey(xp))
			}
		}
		return nil
	})
	if err != nil {
		s.log.Warn("nfs: alias not dropped", "path", xp, "err", err)
	}
}
