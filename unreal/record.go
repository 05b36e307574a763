package unreal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/realizefs/realize"
)

// bucketCache is the top-level bucket this package owns: one record per
// blob with blocks in the cache (docs/storage.md).
var bucketCache = []byte("cache")

const recordVersion = 1

// encodeRecord lays out a blob's record:
//
//	version (1) | size (8 BE) | last access Unix ns (8 BE) | blocks n (4 BE)
//	| n × (hash 32 | size 4 BE) | present bitset, ceil(n/8) bytes, block i = bit i%8 of byte i/8
func encodeRecord(b *blobState) []byte {
	n := len(b.blocks)
	out := make([]byte, 21, 21+36*n+(n+7)/8)
	out[0] = recordVersion
	binary.BigEndian.PutUint64(out[1:], uint64(b.size))
	binary.BigEndian.PutUint64(out[9:], uint64(b.access))
	binary.BigEndian.PutUint32(out[17:], uint32(n))
	for _, blk := range b.blocks {
		out = append(out, blk.Hash[:]...)
		out = binary.BigEndian.AppendUint32(out, blk.Size)
	}
	bits := make([]byte, (n+7)/8)
	for i, e := range b.elems {
		if e != nil {
			bits[i/8] |= 1 << (i % 8)
		}
	}
	return append(out, bits...)
}

// decodeRecord parses a record, refusing anything a valid cache could not
// have written (it is data on disk: it is checked, not trusted).
func decodeRecord(blob realize.Hash, v []byte) (*blobState, []bool, int64, error) {
	if len(v) < 21 || v[0] != recordVersion {
		return nil, nil, 0, errors.New("bad record header")
	}
	size := int64(binary.BigEndian.Uint64(v[1:]))
	access := int64(binary.BigEndian.Uint64(v[9:]))
	n := int(binary.BigEndian.Uint32(v[17:]))
	if n > maxBlocks || len(v) != 21+36*n+(n+7)/8 {
		return nil, nil, 0, errors.New("bad record length")
	}
	blocks := make(realize.BlockMap, n)
	p := v[21:]
	for i := range blocks {
		copy(blocks[i].Hash[:], p[:32])
		blocks[i].Size = binary.BigEndian.Uint32(p[32:])
		p = p[36:]
	}
	if err := checkBlockMap(blob, blocks, size); err != nil {
		return nil, nil, 0, err
	}
	present := make([]bool, n)
	for i := range present {
		present[i] = p[i/8]&(1<<(i%8)) != 0
	}
	return newBlobState(blob, size, blocks), present, access, nil
}

// load reads every record, keeps what the files still back, and rebuilds
// the LRU list ordered by each blob's last access (the order within a blob
// is not recorded: block order stands in for it).
func (c *Cache) load(ctx context.Context) error {
	type loaded struct {
		b       *blobState
		present []bool
	}
	var all []loaded
	var bad [][]byte
	err := c.db.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists(bucketCache)
		if err != nil {
			return err
		}
		return bk.ForEach(func(k, v []byte) error {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var blob realize.Hash
			if len(k) != len(blob) {
				bad = append(bad, k)
				return nil
			}
			copy(blob[:], k)
			b, present, access, err := decodeRecord(blob, v)
			if err != nil {
				c.log.Warn("cache: dropping a damaged record", "blob", blob.String(), "err", err)
				bad = append(bad, k)
				return nil
			}
			b.access, b.saved = access, access
			all = append(all, loaded{b, present})
			return nil
		})
	})
	if err != nil {
		return &realize.Error{Op: "open cache", Kind: realize.IO, Err: err}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].b.access < all[j].b.access })
	for _, l := range all {
		c.adoptRecord(l.b, l.present)
	}
	c.removeOrphans()
	return c.flushDeletes(bad)
}

// adoptRecord installs a loaded blob, trusting its present bits only as
// far as the file reaches (a file removed or truncated behind our back
// holds nothing past its end).
func (c *Cache) adoptRecord(b *blobState, present []bool) {
	info, err := os.Stat(c.path(b.hash))
	if err != nil {
		c.deleted[b.hash] = true
		return
	}
	for i, p := range present {
		if p && b.offs[i+1] <= info.Size() {
			c.markPresentLocked(b, i)
		}
	}
	b.unsynced = false
	delete(c.dirty, b.hash)
	c.blobs[b.hash] = b
}

// removeOrphans deletes files in Dir that no record describes: a block
// written just before a crash whose record never committed, or a file
// adopted just before one. Missing data is refetched; it is never guessed.
func (c *Cache) removeOrphans() {
	entries, err := os.ReadDir(c.dir)
	if err != nil {
		c.log.Warn("cache: cannot list the cache directory", "dir", c.dir, "err", err)
		return
	}
	for _, e := range entries {
		h, err := realize.ParseHash(e.Name())
		if err == nil && c.blobs[h] != nil {
			continue
		}
		if err := os.RemoveAll(filepath.Join(c.dir, e.Name())); err != nil {
			c.log.Warn("cache: cannot remove a stray file", "name", e.Name(), "err", err)
		}
	}
}

// flushDeletes removes the records of blobs found gone at load, and the
// malformed keys.
func (c *Cache) flushDeletes(badKeys [][]byte) error {
	err := c.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketCache)
		for _, k := range badKeys {
			if err := bk.Delete(k); err != nil {
				return err
			}
		}
		for h := range c.deleted {
			if c.blobs[h] == nil {
				if err := bk.Delete(h[:]); err != nil {
					return err
				}
			}
		}
		return nil
	})
	clear(c.deleted)
	if err != nil {
		return &realize.Error{Op: "open cache", Kind: realize.IO, Err: err}
	}
	return nil
}

func (c *Cache) flushLoop() {
	defer c.wg.Done()
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
			if err := c.flush(); err != nil {
				c.log.Warn("cache: cannot record cached blocks", "err", err)
			}
			c.forgetIdle()
			c.trim() // the disk may have filled up (Leave)
		}
	}
}

// flush writes the records of blobs changed since the last flush in one
// transaction. Files that got blocks are fsynced first: a record never
// claims a block the disk may not hold.
func (c *Cache) flush() error {
	c.mu.Lock()
	var sync []*blobState
	recs := map[realize.Hash][]byte{}
	for h, b := range c.dirty {
		if b.unsynced {
			sync = append(sync, b)
			b.unsynced = false
		}
		if b.present > 0 {
			recs[h] = encodeRecord(b)
			b.saved = b.access
		} else {
			c.deleted[h] = true
		}
	}
	clear(c.dirty)
	deleted := c.deleted
	c.deleted = map[realize.Hash]bool{}
	c.mu.Unlock()
	if len(recs) == 0 && len(deleted) == 0 {
		return nil
	}
	for _, b := range sync {
		c.syncFile(b)
	}
	return c.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketCache)
		// Checked inside the transaction: a blob forgotten after the
		// snapshot deletes its record in a transaction after this one.
		c.mu.Lock()
		defer c.mu.Unlock()
		for h := range deleted {
			if b := c.blobs[h]; b == nil || b.present == 0 {
				if err := bk.Delete(h[:]); err != nil {
					return err
				}
			}
		}
		for h, v := range recs {
			if b := c.blobs[h]; b == nil || b.gone {
				continue
			}
			if err := bk.Put(h[:], v); err != nil {
				return err
			}
		}
		return nil
	})
}

func (c *Cache) syncFile(b *blobState) {
	b.io.RLock()
	defer b.io.RUnlock()
	f, err := os.OpenFile(c.path(b.hash), os.O_RDWR, 0)
	if err != nil {
		return // forgotten since: nothing to record
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		c.log.Warn("cache: fsync failed", "blob", b.hash.String(), "err", err)
	}
}

// writeRecord records b now (Adopt: the file is all there, and a
// crash must not turn it into an orphan to delete).
func (c *Cache) writeRecord(b *blobState) error {
	return c.db.Update(func(tx *bolt.Tx) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		if b.gone {
			return nil
		}
		delete(c.dirty, b.hash)
		b.saved = b.access
		return tx.Bucket(bucketCache).Put(b.hash[:], encodeRecord(b))
	})
}

func (c *Cache) deleteRecord(blob realize.Hash) error {
	err := c.db.Update(func(tx *bolt.Tx) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.blobs[blob] != nil {
			return nil // a new copy arrived meanwhile; its record is its own
		}
		delete(c.deleted, blob)
		return tx.Bucket(bucketCache).Delete(blob[:])
	})
	if err != nil {
		return &realize.Error{Op: "delete cache record", Kind: realize.IO, Err: fmt.Errorf("%s: %w", blob.Short(), err)}
	}
	return nil
}

// forgetIdle drops from memory blobs with no block stored that nobody
// read for a while (their block maps would otherwise accumulate).
func (c *Cache) forgetIdle() {
	limit := c.clock.Now().Add(-idleForget).UnixNano()
	c.mu.Lock()
	var idle []*blobState
	for _, b := range c.blobs {
		if b.present == 0 && b.access < limit && c.holds[b.hash] == 0 {
			idle = append(idle, b)
		}
	}
	c.mu.Unlock()
	for _, b := range idle {
		b.io.Lock()
		c.mu.Lock()
		forget := !b.gone && b.present == 0
		if forget {
			c.forgetLocked(b)
			c.deleted[b.hash] = true
		}
		c.mu.Unlock()
		if forget {
			os.Remove(c.path(b.hash)) // holds no block: nothing lost if this fails
		}
		b.io.Unlock()
	}
}
