package unreal

import (
	"container/list"
	"path/filepath"
	"sort"
	"sync"

	"github.com/realizefs/realize"
)

// blobState is what the cache knows of one blob. Fields other than io are
// guarded by Cache.mu.
type blobState struct {
	hash   realize.Hash
	size   int64
	blocks realize.BlockMap
	offs   []int64 // offs[i] is where block i starts; offs[len(blocks)] == size

	// elems[i] is block i's place in the LRU list, nil when the block is
	// not present: the list is the present bitset too.
	elems        []*list.Element
	present      int
	presentBytes int64

	access   int64 // last read, Unix ns
	saved    int64 // access as last written to the record
	lastEnd  int64 // end of the last read, to notice sequential access
	unsynced bool  // blocks written since the file was last fsynced
	gone     bool  // forgotten: no longer in Cache.blobs, must not be written

	// io orders file access against punching, renaming and removing:
	// reads and block writes take it shared, the rest exclusively. It is
	// always taken before Cache.mu, never while holding it.
	io sync.RWMutex
}

// lruEntry is one present block in the LRU list.
type lruEntry struct {
	b *blobState
	i int
}

func newBlobState(blob realize.Hash, size int64, blocks realize.BlockMap) *blobState {
	b := &blobState{hash: blob, size: size, blocks: blocks}
	b.offs = make([]int64, len(blocks)+1)
	for i, blk := range blocks {
		b.offs[i+1] = b.offs[i] + int64(blk.Size)
	}
	b.elems = make([]*list.Element, len(blocks))
	return b
}

// blockAt returns the index of the block holding byte off (< size).
func (b *blobState) blockAt(off int64) int {
	return sort.Search(len(b.blocks), func(i int) bool { return b.offs[i+1] > off }) // first block ending after off
}

func (b *blobState) complete() bool { return b.present == len(b.blocks) }

func (c *Cache) path(blob realize.Hash) string { return filepath.Join(c.dir, blob.String()) }

// markPresentLocked records block i of b as present and most recently
// used. The caller has written the block to the file.
func (c *Cache) markPresentLocked(b *blobState, i int) {
	if b.elems[i] != nil {
		c.lru.MoveToFront(b.elems[i])
		return
	}
	b.elems[i] = c.lru.PushFront(&lruEntry{b, i})
	b.present++
	size := int64(b.blocks[i].Size)
	b.presentBytes += size
	c.used += size
	b.unsynced = true
	c.dirty[b.hash] = b
}

// markAbsentLocked forgets block i of b (evicted or found damaged).
func (c *Cache) markAbsentLocked(b *blobState, i int) {
	if b.elems[i] == nil {
		return
	}
	c.lru.Remove(b.elems[i])
	b.elems[i] = nil
	b.present--
	size := int64(b.blocks[i].Size)
	b.presentBytes -= size
	c.used -= size
	c.dirty[b.hash] = b
}

// forgetLocked removes b from the cache's memory. The caller holds b.io
// exclusively, and removes or moves the file and the record.
func (c *Cache) forgetLocked(b *blobState) {
	for i := range b.elems {
		c.markAbsentLocked(b, i)
	}
	b.gone = true
	if c.blobs[b.hash] == b {
		delete(c.blobs, b.hash)
	}
	delete(c.dirty, b.hash)
}

// touchLocked notes a read of b now.
func (c *Cache) touchLocked(b *blobState) {
	b.access = c.clock.Now().UnixNano()
	if b.present > 0 && b.access-b.saved > int64(accessSaveEvery) {
		c.dirty[b.hash] = b
	}
}

// memCache keeps recently used verified block bytes, by block hash, so
// that consecutive small reads of one block neither re-read nor re-hash
// it. Bytes in it are never modified.
type memCache struct {
	mu    sync.Mutex
	max   int64
	size  int64
	order *list.List // *memEntry, most recent first
	byKey map[realize.Hash]*list.Element
}

type memEntry struct {
	hash realize.Hash
	data []byte
}

func newMemCache(max int64) *memCache {
	return &memCache{max: max, order: list.New(), byKey: map[realize.Hash]*list.Element{}}
}

func (m *memCache) get(h realize.Hash) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.byKey[h]; e != nil {
		m.order.MoveToFront(e)
		return e.Value.(*memEntry).data
	}
	return nil
}

func (m *memCache) put(h realize.Hash, data []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.byKey[h] != nil || int64(len(data)) > m.max {
		return
	}
	m.byKey[h] = m.order.PushFront(&memEntry{h, data})
	m.size += int64(len(data))
	for m.size > m.max {
		e := m.order.Back()
		me := e.Value.(*memEntry)
		m.order.Remove(e)
		delete(m.byKey, me.hash)
		m.size -= int64(len(me.data))
	}
}

func (m *memCache) has(h realize.Hash) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.byKey[h] != nil
}
