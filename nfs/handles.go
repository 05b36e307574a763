package nfs

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/internal/store"
	bolt "go.etcd.io/bbolt"
)

// File handles are persistent: every export path the server has shown gets
// an id, kept in the database (bucket "nfs"), so a handle stays valid
// across restarts and there is no handle cache that can forget one.
//
//	nfs/
//	    key       -> 8 random bytes, made once; part of every handle
//	    ids/<id, 8 bytes BE>    -> "/" + export path
//	    paths/"/" + export path -> id (8 bytes BE)
//
// The export path is the path below the export root, shared by both views:
// "" (the root), "<arena>", "<arena>/<path>", "conflicts",
// "conflicts/<arena>/<path>/<version>". Ids come from the bucket sequence
// and are never reused: a removed path loses its id (its old handles are
// stale), a path renamed through NFS keeps it, its descendants too.
//
// A handle is 28 bytes:
//
//	"RZ" | format (1, = 1) | view (1) | key (8) | mount root id (8) | object id (8)
//
// Its length must be a multiple of 4: go-nfs reads a handle followed by
// more arguments (SETATTR, ACCESS) without skipping XDR padding.
// The mount root id lets a handle of a subdirectory mount resolve relative
// to that mount (go-nfs gives paths relative to the mounted filesystem).
var (
	bucketNFS   = []byte("nfs")
	bucketIDs   = []byte("ids")
	bucketPaths = []byte("paths")
	// aliases/"/"+export path -> id: an old name that still answers in the
	// all-files view (alias.go).
	bucketAliases = []byte("aliases")
	keyKey        = []byte("key")
)

const handleLen = 28

// pkey is the key of export path xp (bbolt keys cannot be empty, and the
// root's export path is).
func pkey(xp string) []byte { return []byte("/" + xp) }

type handles struct {
	db  *store.DB
	key [8]byte
}

func openHandles(db *store.DB) (*handles, error) {
	h := &handles{db: db}
	err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketNFS)
		if err != nil {
			return err
		}
		if _, err := b.CreateBucketIfNotExists(bucketIDs); err != nil {
			return err
		}
		if _, err := b.CreateBucketIfNotExists(bucketPaths); err != nil {
			return err
		}
		if _, err := b.CreateBucketIfNotExists(bucketAliases); err != nil {
			return err
		}
		if k := b.Get(keyKey); len(k) == 8 {
			copy(h.key[:], k)
			return nil
		}
		if _, err := rand.Read(h.key[:]); err != nil {
			return err
		}
		return b.Put(keyKey, h.key[:])
	})
	if err != nil {
		return nil, &realize.Error{Op: "open nfs handles", Kind: realize.IO, Err: err}
	}
	return h, nil
}

func buckets(tx *bolt.Tx) (ids, paths *bolt.Bucket) {
	b := tx.Bucket(bucketNFS)
	if b == nil {
		return nil, nil
	}
	return b.Bucket(bucketIDs), b.Bucket(bucketPaths)
}

var errNoBucket = errors.New("nfs bucket missing")

// id returns xp's id, giving it one if it has none.
func (h *handles) id(xp string) (uint64, error) {
	ids, err := h.ensure([]string{xp})
	if err != nil {
		return 0, err
	}
	return ids[0], nil
}

// ensure returns the ids of xps, giving ids to those that have none, in one
// transaction (a directory listing costs one commit, not one per entry).
func (h *handles) ensure(xps []string) ([]uint64, error) {
	out := make([]uint64, len(xps))
	missing := false
	err := h.db.View(func(tx *bolt.Tx) error {
		_, paths := buckets(tx)
		if paths == nil {
			return errNoBucket
		}
		for i, xp := range xps {
			if v := paths.Get(pkey(xp)); len(v) == 8 {
				out[i] = binary.BigEndian.Uint64(v)
			} else {
				missing = true
			}
		}
		return nil
	})
	if err != nil || !missing {
		return out, err
	}
	err = h.db.Update(func(tx *bolt.Tx) error {
		ids, paths := buckets(tx)
		if paths == nil {
			return errNoBucket
		}
		for i, xp := range xps {
			if v := paths.Get(pkey(xp)); len(v) == 8 {
				out[i] = binary.BigEndian.Uint64(v)
				continue
			}
			n, err := ids.NextSequence()
			if err != nil {
				return err
			}
			k := store.SeqKey(n)
			if err := ids.Put(k, pkey(xp)); err != nil {
				return err
			}
			if err := paths.Put(pkey(xp), k); err != nil {
				return err
			}
			out[i] = n
		}
		return nil
	})
	return out, err
}

// path returns the export path of id; ok is false for an unknown id.
func (h *handles) path(id uint64) (xp string, ok bool, err error) {
	err = h.db.View(func(tx *bolt.Tx) error {
		ids, _ := buckets(tx)
		if ids == nil {
			return errNoBucket
		}
		if v := ids.Get(store.SeqKey(id)); len(v) > 0 {
			xp, ok = string(v[1:]), true
		}
		return nil
	})
	return xp, ok, err
}

// below calls fn for xp and every path beneath it that has an id.
func below(paths *bolt.Bucket, xp string, fn func(p string, id []byte) error) error {
	var keys [][2][]byte
	if v := paths.Get(pkey(xp)); v != nil {
		keys = append(keys, [2][]byte{pkey(xp), bytes.Clone(v)})
	}
	prefix := pkey(xp + "/")
	if xp == "" {
		prefix = pkey("") // everything is beneath the root
	}
	c := paths.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if len(k) == 1 {
			continue // the root itself, listed above
		}
		keys = append(keys, [2][]byte{bytes.Clone(k), bytes.Clone(v)})
	}
	for _, kv := range keys {
		if err := fn(string(kv[0][1:]), kv[1]); err != nil {
			return err
		}
	}
	return nil
}

// rename moves the ids of from and everything beneath it to to; whatever
// had ids at to (replaced by the rename) loses them.
func (h *handles) rename(from, to string) error {
	return h.db.Update(func(tx *bolt.Tx) error { return renameIn(tx, from, to) })
}

// renameIn is rename within tx. A source without ids is nothing to move:
// the destination keeps its own (the move was already followed, by the
// index's observer, before the NFS operation that made it returned).
func renameIn(tx *bolt.Tx, from, to string) error {
	if from == to || from == "" {
		return nil
	}
	ids, paths := buckets(tx)
	if paths == nil {
		return errNoBucket
	}
	if !hasBelow(paths, from) {
		return nil
	}
	if err := below(paths, to, func(p string, id []byte) error {
		if err := ids.Delete(id); err != nil {
			return err
		}
		return paths.Delete(pkey(p))
	}); err != nil {
		return err
	}
	return below(paths, from, func(p string, id []byte) error {
		np := to + p[len(from):]
		if err := paths.Delete(pkey(p)); err != nil {
			return err
		}
		if err := paths.Put(pkey(np), id); err != nil {
			return err
		}
		return ids.Put(id, pkey(np))
	})
}

// hasBelow tells whether xp or anything beneath it has an id.
func hasBelow(paths *bolt.Bucket, xp string) bool {
	if paths.Get(pkey(xp)) != nil {
		return true
	}
	prefix := pkey(xp + "/")
	k, _ := paths.Cursor().Seek(prefix)
	return k != nil && bytes.HasPrefix(k, prefix)
}

// forget drops the ids of xp and everything beneath it (after a removal
// through NFS): their handles become stale, a new file there gets a new id.
func (h *handles) forget(xp string) error {
	if xp == "" {
		return nil
	}
	return h.db.Update(func(tx *bolt.Tx) error {
		ids, paths := buckets(tx)
		if paths == nil {
			return errNoBucket
		}
		return below(paths, xp, func(p string, id []byte) error {
			if err := ids.Delete(id); err != nil {
				return err
			}
			return paths.Delete(pkey(p))
		})
	})
}

// encode builds a handle.
func (h *handles) encode(v view, root, id uint64) []byte {
	b := make([]byte, handleLen)
	b[0], b[1], b[2], b[3] = 'R', 'Z', 1, byte(v)
	copy(b[4:12], h.key[:])
	binary.BigEndian.PutUint64(b[12:20], root)
	binary.BigEndian.PutUint64(b[20:28], id)
	return b
}

var errStale = errors.New("stale file handle")

// decode parses a handle made by encode with this database's key.
func (h *handles) decode(b []byte) (v view, root, id uint64, err error) {
	if len(b) != handleLen || b[0] != 'R' || b[1] != 'Z' || b[2] != 1 || !bytes.Equal(b[4:12], h.key[:]) {
		return 0, 0, 0, errStale
	}
	v = view(b[3])
	if v != viewMerged && v != viewAll {
		return 0, 0, 0, errStale
	}
	return v, binary.BigEndian.Uint64(b[12:20]), binary.BigEndian.Uint64(b[20:28]), nil
}

func (v view) String() string {
	switch v {
	case viewMerged:
		return "merged"
	case viewAll:
		return "all"
	}
	return fmt.Sprintf("view%d", byte(v))
}
