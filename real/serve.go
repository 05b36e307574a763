package real

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/realizefs/realize"
	"github.com/zeebo/blake3"
	bolt "go.etcd.io/bbolt"
)

// BlockMap returns the block map of a blob this peer holds in this arena.
// Blob records are shared by all arenas of a peer, so the blob must be
// used by a path of this arena (or kept as one of its conflict losers):
// a peer that knows a hash from elsewhere learns nothing of an arena not
// shared with it.
func (a *Arena) BlockMap(blob realize.Hash) (realize.BlockMap, error) {
	var blocks realize.BlockMap
	inArena := false
	err := a.db.View(func(tx *bolt.Tx) error {
		ix, err := OpenIndex(tx, a.name)
		if err != nil {
			return err
		}
		inArena = len(ix.PathsOf(blob)) > 0
		if blocks = a.maps.get(blob); blocks == nil {
			_, _, blocks, err = ix.Blob(blob)
			a.maps.put(blob, blocks)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	kept, isKept := a.ConflictBytes(blob)
	if !inArena && !isKept || blocks == nil && !isKept {
		return nil, &realize.Error{Op: "block map", Kind: realize.NotExist, Arena: a.name, Err: fmt.Errorf("no blob %s here", blob.Short())}
	}
	if blocks == nil {
		// A conflict loser kept aside: no path records it, so its blob
		// record went with its last reference. Its map is a function of
		// its bytes: compute it (rare, and only for conflict versions).
		info, err := os.Lstat(kept)
		if err != nil {
			return nil, &realize.Error{Op: "block map", Kind: realize.NotExist, Arena: a.name, Err: err}
		}
		h, err := a.hasher.HashFile(context.Background(), kept, StatOf(info))
		if err != nil {
			return nil, err
		}
		if h.Blob != blob {
			return nil, &realize.Error{Op: "block map", Kind: realize.Corrupt, Arena: a.name, Err: fmt.Errorf("kept conflict bytes of %s changed", blob.Short())}
		}
		blocks = h.Blocks
	}
	return blocks, nil
}

// ReadBlocks reads n blocks of a blob from a local copy, from block index
// first, and calls fn with each. Every block is checked against its hash
// before fn sees it (invariant 3: bytes from disk are verified before they
// are served); a file that no longer matches ends the read with a Changed
// error, and fn never receives its bytes.
func (a *Arena) ReadBlocks(ctx context.Context, blob realize.Hash, first, n int, fn func(i int, data []byte) error) error {
	blocks, err := a.BlockMap(blob)
	if err != nil {
		return err
	}
	if first < 0 || n < 0 || first > len(blocks) || n > len(blocks)-first {
		return &realize.Error{Op: "read blocks", Kind: realize.Invalid, Arena: a.name, Err: fmt.Errorf("blocks %d+%d of %d", first, n, len(blocks))}
	}
	f, err := a.OpenBlob(blob)
	if err != nil {
		return err
	}
	defer f.Close()
	var off int64
	for i := 0; i < first; i++ {
		off += int64(blocks[i].Size)
	}
	buf := make([]byte, BlockMax)
	for i := first; i < first+n; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		b := buf[:blocks[i].Size]
		if _, err := f.ReadAt(b, off); err != nil && err != io.EOF {
			return &realize.Error{Op: "read blocks", Kind: realize.IO, Arena: a.name, Err: err}
		}
		if realize.Hash(blake3.Sum256(b)) != blocks[i].Hash {
			return &realize.Error{Op: "read blocks", Kind: realize.Changed, Arena: a.name,
				Err: fmt.Errorf("block %d of %s no longer matches on disk", i, blob.Short())}
		}
		if err := fn(i, b); err != nil {
			return err
		}
		off += int64(blocks[i].Size)
	}
	return nil
}

// mapCache keeps the block maps of the last few blobs served. A block map
// is a function of the blob's bytes, so an entry never goes stale; serving
// a large file asks for its map once per run of blocks, and decoding a
// 1 GiB file's map each time would cost more than sending the blocks.
type mapCache struct {
	mu sync.Mutex
	m  map[realize.Hash]realize.BlockMap
}

const mapCacheSize = 16

func (c *mapCache) get(h realize.Hash) realize.BlockMap {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[h]
}

func (c *mapCache) put(h realize.Hash, bm realize.BlockMap) {
	if bm == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= mapCacheSize {
		c.m = map[realize.Hash]realize.BlockMap{} // small: start over rather than track use
	}
	c.m[h] = bm
}
