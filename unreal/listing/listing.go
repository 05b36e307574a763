// Package listing keeps what a peer knows about the household's files
// beyond its own disk: which peers hold the bytes of which paths (learnt
// from their histories, entry by entry), and the pin marks the user set
// on paths here. Both live in the peer's database, so they answer with
// every peer offline.
//
// Holders are kept per (arena, peer, path) and indexed by blob, because
// the two questions asked are "who holds this path's current version"
// (realize status PATH) and "does anyone else hold this blob" (the last-
// copy rule of unpin and cache eviction). A peer's entries say what it
// keeps: a file recorded real (Entry.Unreal false) is held, an unreal one,
// a removal or an OpUnrealize is not.
package listing

import (
	"bytes"

	"github.com/realizefs/realize"
	bolt "go.etcd.io/bbolt"
)

// Buckets (see docs/storage.md):
//
//	holders/<arena>/<peer 32><path key> -> blob (32)
//	heldby/<blob 32><peer 32><arena>\xff<path key> -> empty
var (
	bucketHolders = []byte("holders")
	bucketHeldBy  = []byte("heldby")
)

func pathKey(p realize.Path) []byte { return bytes.ReplaceAll([]byte(p), []byte{'/'}, []byte{0}) }

// Observe records what one entry of author's log says author holds. Call
// it for every entry of a log, in order, inside the transaction that
// stores them.
func Observe(tx *bolt.Tx, e *realize.Entry) error {
	switch e.Op {
	case realize.OpRename:
		if err := setHeld(tx, e.Arena, e.Peer, e.From, nil); err != nil {
			return err
		}
	case realize.OpRemove, realize.OpRmdir:
		return setHeld(tx, e.Arena, e.Peer, e.Path, nil)
	}
	if e.Meta.Kind != realize.KindFile || e.Unreal {
		return setHeld(tx, e.Arena, e.Peer, e.Path, nil)
	}
	b := e.Meta.Blob
	return setHeld(tx, e.Arena, e.Peer, e.Path, &b)
}

func setHeld(tx *bolt.Tx, arena realize.ArenaName, peer realize.PeerID, path realize.Path, blob *realize.Hash) error {
	root, err := tx.CreateBucketIfNotExists(bucketHolders)
	if err != nil {
		return err
	}
	ab, err := root.CreateBucketIfNotExists([]byte(arena))
	if err != nil {
		return err
	}
	by, err := tx.CreateBucketIfNotExists(bucketHeldBy)
	if err != nil {
		return err
	}
	pk := pathKey(path)
	key := append(append([]byte{}, peer[:]...), pk...)
	if old := ab.Get(key); len(old) == 32 {
		if err := by.Delete(heldByKey(old, peer, arena, pk)); err != nil {
			return err
		}
	}
	if blob == nil {
		return ab.Delete(key)
	}
	if err := ab.Put(key, blob[:]); err != nil {
		return err
	}
	return by.Put(heldByKey(blob[:], peer, arena, pk), nil)
}

func heldByKey(blob []byte, peer realize.PeerID, arena realize.ArenaName, pk []byte) []byte {
	k := make([]byte, 0, 64+len(arena)+1+len(pk))
	k = append(append(append(k, blob...), peer[:]...), arena...)
	return append(append(k, 0xff), pk...)
}

// Holders returns the peers known to hold blob in a real file, anywhere
// in the household, excluding self.
func Holders(tx *bolt.Tx, blob realize.Hash, self realize.PeerID) []realize.PeerID {
	by := tx.Bucket(bucketHeldBy)
	if by == nil {
		return nil
	}
	var out []realize.PeerID
	c := by.Cursor()
	for k, _ := c.Seek(blob[:]); k != nil && bytes.HasPrefix(k, blob[:]); {
		var p realize.PeerID
		copy(p[:], k[32:64])
		if p != self {
			out = append(out, p)
		}
		// Skip the rest of this peer's paths.
		next := append(append([]byte{}, k[:64]...), 0xff, 0xff)
		k, _ = c.Seek(next)
	}
	return out
}

// PathHolders returns the peers whose history says they hold path's
// content blob (excluding self).
func PathHolders(tx *bolt.Tx, arena realize.ArenaName, path realize.Path, blob realize.Hash, self realize.PeerID) []realize.PeerID {
	root := tx.Bucket(bucketHolders)
	if root == nil || root.Bucket([]byte(arena)) == nil {
		return nil
	}
	ab := root.Bucket([]byte(arena))
	pk := pathKey(path)
	var out []realize.PeerID
	for _, p := range Holders(tx, blob, self) {
		if bytes.Equal(ab.Get(append(append([]byte{}, p[:]...), pk...)), blob[:]) {
			out = append(out, p)
		}
	}
	return out
}

// Forget drops what is known of the paths peer holds in arena. A peer
// whose copy of peer's log is reset (a catch-up by snapshot) can no longer
// tell what the trimmed entries said: a holder it kept from before could
// have dropped those bytes since, and the last-copy rule must never count
// on a copy that may be gone.
func Forget(tx *bolt.Tx, arena realize.ArenaName, peer realize.PeerID) error {
	root := tx.Bucket(bucketHolders)
	if root == nil || root.Bucket([]byte(arena)) == nil {
		return nil
	}
	ab := root.Bucket([]byte(arena))
	var paths []realize.Path
	c := ab.Cursor()
	for k, _ := c.Seek(peer[:]); k != nil && bytes.HasPrefix(k, peer[:]); k, _ = c.Next() {
		paths = append(paths, realize.Path(bytes.ReplaceAll(k[len(peer):], []byte{0}, []byte{'/'})))
	}
	for _, p := range paths {
		if err := setHeld(tx, arena, peer, p, nil); err != nil {
			return err
		}
	}
	return nil
}

// Held records that peer keeps blob real at path, as a snapshot peer sent
// of its own index says.
func Held(tx *bolt.Tx, arena realize.ArenaName, peer realize.PeerID, path realize.Path, blob realize.Hash) error {
	return setHeld(tx, arena, peer, path, &blob)
}
