package unreal

import (
	"math"
	"os"
	"time"

	"github.com/realizefs/realize"
)

// starveRetry: after an eviction pass found too little to evict, blocks
// are passed through without a new pass for this long (unless a hold is
// released), so a cache full of protected data does not walk its whole
// LRU list for every block read.
const starveRetry = time.Second

// refreshDisk asks the file system holding Dir for its size and free
// space, and remembers the answer for when it cannot be asked.
func (c *Cache) refreshDisk() (diskSize, error) {
	total, free, err := c.statfs(c.dir)
	if err != nil {
		if d := c.disk.Load(); d != nil {
			return *d, err
		}
		return diskSize{}, err
	}
	d := diskSize{total, free}
	c.disk.Store(&d)
	return d, nil
}

func (c *Cache) diskNow() diskSize {
	d, _ := c.refreshDisk()
	return d
}

// limitLocked is the quota now: Max (resolved against the disk size) and
// never less free space on the disk than Leave. The disk's free space
// excludes what the cache uses, hence used + free.
func (c *Cache) limitLocked(d diskSize) int64 {
	limit := int64(math.MaxInt64)
	if max := c.max.Of(d.total); max > 0 {
		limit = max
	} else if c.max.IsPercent() {
		limit = 0 // a share of an unknown disk: store nothing rather than guess
	}
	if d.total > 0 {
		limit = min(limit, c.used+d.free-c.leave.Of(d.total))
	}
	return max(limit, 0)
}

// reserve makes room for size bytes, evicting least recently used blocks
// if needed. false: there is no room and nothing evictable enough, the
// caller serves the block without storing it.
func (c *Cache) reserve(size int64) bool {
	d := c.diskNow()
	c.mu.Lock()
	over := c.used + c.reserved + size - c.limitLocked(d)
	var victims []lruEntry
	if over > 0 {
		if !c.starved.IsZero() && c.clock.Now().Sub(c.starved) < starveRetry {
			c.mu.Unlock()
			return false
		}
		victims = c.pickVictimsLocked(over, false)
		if victims == nil {
			c.starved = c.clock.Now()
			c.mu.Unlock()
			return false
		}
		c.evictLocked(victims)
	}
	c.reserved += size
	c.mu.Unlock()
	c.punch(victims)
	return true
}

// trim evicts until usage is within the limit (the limit shrank: Max
// lowered, the disk filled up, a blob was adopted).
func (c *Cache) trim() {
	d := c.diskNow()
	c.mu.Lock()
	over := c.used + c.reserved - c.limitLocked(d)
	var victims []lruEntry
	if over > 0 {
		victims = c.pickVictimsLocked(over, true) // free what can be freed
		c.evictLocked(victims)
	}
	c.mu.Unlock()
	c.punch(victims)
}

// pickVictimsLocked walks the LRU list from its cold end and returns the
// evictable blocks adding up to at least need bytes, or (unless partial)
// nil if there are not enough. Blocks of protected blobs (held, or without enough other
// copies in the household) are moved to the warm end as they are passed:
// they are in use or must stay, and the next pass need not walk them again.
func (c *Cache) pickVictimsLocked(need int64, partial bool) []lruEntry {
	protected := map[*blobState]bool{}
	var out []lruEntry
	var freed int64
	e := c.lru.Back()
	for n := c.lru.Len(); n > 0 && e != nil && freed < need; n-- {
		prev := e.Prev()
		r := e.Value.(*lruEntry)
		p, ok := protected[r.b]
		if !ok {
			p = c.protectedLocked(r.b.hash)
			protected[r.b] = p
		}
		if p {
			c.lru.MoveToFront(e)
		} else {
			out = append(out, *r)
			freed += int64(r.b.blocks[r.i].Size)
		}
		e = prev
	}
	if freed < need && !partial {
		return nil
	}
	return out
}

// protectedLocked: never evicted are blobs held open and blobs fewer than
// Copies other peers hold (SPEC §5 invariant 4).
func (c *Cache) protectedLocked(blob realize.Hash) bool {
	if c.holds[blob] > 0 {
		return true
	}
	others := 0
	if c.others != nil {
		others = c.others(blob)
	}
	return others < c.copies
}

// evictLocked forgets the victims: from here on they are absent, reads
// refetch them. Their bytes are punched out of the files by punch.
func (c *Cache) evictLocked(victims []lruEntry) {
	for _, v := range victims {
		c.st.evicted.Add(int64(v.b.blocks[v.i].Size))
		c.markAbsentLocked(v.b, v.i)
	}
}

// punch frees the victims' disk space, blob by blob, with the blob's file
// held exclusively (no read of the block is under way, and a block written
// again since it was picked is left alone). A blob left with no block is
// removed altogether.
func (c *Cache) punch(victims []lruEntry) {
	byBlob := map[*blobState][]int{}
	var order []*blobState
	for _, v := range victims {
		if byBlob[v.b] == nil {
			order = append(order, v.b)
		}
		byBlob[v.b] = append(byBlob[v.b], v.i)
	}
	for _, b := range order {
		c.punchBlob(b, byBlob[b])
	}
}

func (c *Cache) punchBlob(b *blobState, idx []int) {
	b.io.Lock()
	defer b.io.Unlock()
	c.mu.Lock()
	if b.gone {
		c.mu.Unlock()
		return
	}
	var holes []int
	for _, i := range idx {
		if b.elems[i] == nil {
			holes = append(holes, i)
		}
	}
	empty := b.present == 0 && c.holds[b.hash] == 0
	if empty {
		c.forgetLocked(b)
		c.deleted[b.hash] = true
	}
	c.mu.Unlock()
	path := c.path(b.hash)
	if empty {
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			c.log.Warn("cache: cannot remove an evicted blob", "blob", b.hash.String(), "err", err)
		}
		return
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return
	}
	defer f.Close()
	for _, i := range holes {
		if err := punchHole(f, b.offs[i], int64(b.blocks[i].Size)); err != nil {
			// The block is forgotten all the same: it is refetched when
			// read; its space comes back when the blob is dropped.
			c.log.Debug("cache: cannot punch a hole", "blob", b.hash.String(), "err", err)
			return
		}
	}
}
