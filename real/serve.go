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
// error, and fn never receives its bytes. data is valid until fn returns.
//
// A run of several blocks is read and verified ahead of fn on another
// goroutine (a few blocks ahead), so that a caller sending them on the
// network is not idle while the disk is read and the bytes hashed.
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
	r := &blockReader{a: a, f: f, blob: blob, blocks: blocks}
	if n <= 1 {
		return r.each(ctx, first, n, off, fn)
	}
	return r.ahead(ctx, first, n, off, fn)
}

// blockReader reads verified blocks of one blob from one open file.
type blockReader struct {
	a      *Arena
	f      *os.File
	blob   realize.Hash
	blocks realize.BlockMap
}

// read reads block i at off into buf (sized to fit) and verifies it.
func (r *blockReader) read(i int, off int64, buf []byte) ([]byte, error) {
	b := buf[:r.blocks[i].Size]
	if _, err := r.f.ReadAt(b, off); err != nil && err != io.EOF {
		return nil, &realize.Error{Op: "read blocks", Kind: realize.IO, Arena: r.a.name, Err: err}
	}
	if realize.Hash(blake3.Sum256(b)) != r.blocks[i].Hash {
		return nil, &realize.Error{Op: "read blocks", Kind: realize.Changed, Arena: r.a.name,
			Err: fmt.Errorf("block %d of %s no longer matches on disk", i, r.blob.Short())}
	}
	return b, nil
}

// largest returns the size of the largest of blocks first..first+n-1: a
// buffer that size holds any of them (a small file's one block does not
// need a buffer of BlockMax).
func (r *blockReader) largest(first, n int) int {
	m := 0
	for _, b := range r.blocks[first : first+n] {
		m = max(m, int(b.Size))
	}
	return m
}

// each reads the blocks one after the other on the caller's goroutine.
func (r *blockReader) each(ctx context.Context, first, n int, off int64, fn func(int, []byte) error) error {
	buf := make([]byte, r.largest(first, n))
	for i := first; i < first+n; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		b, err := r.read(i, off, buf)
		if err != nil {
			return err
		}
		if err := fn(i, b); err != nil {
			return err
		}
		off += int64(r.blocks[i].Size)
	}
	return nil
}

// readAhead is how many blocks ReadBlocks holds read and verified ahead of
// its caller.
const readAhead = 4

type readBlock struct {
	i    int
	data []byte
	err  error
}

// ahead reads and verifies blocks on a goroutine, up to readAhead ahead
// of fn, through a fixed set of buffers.
func (r *blockReader) ahead(ctx context.Context, first, n int, off int64, fn func(int, []byte) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	size := r.largest(first, n)
	free := make(chan []byte, readAhead+1)
	for range readAhead + 1 {
		free <- make([]byte, size)
	}
	out := make(chan readBlock, readAhead)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(out)
		for i := first; i < first+n; i++ {
			var buf []byte
			select {
			case buf = <-free:
			case <-ctx.Done():
				return
			}
			b, err := r.read(i, off, buf)
			select {
			case out <- readBlock{i: i, data: b, err: err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
			off += int64(r.blocks[i].Size)
		}
	}()
	// The reader must be gone before f is closed (deferred by the caller).
	defer func() { cancel(); <-done }()
	for rb := range out {
		if rb.err != nil {
			return rb.err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(rb.i, rb.data); err != nil {
			return err
		}
		free <- rb.data[:cap(rb.data)]
	}
	return ctx.Err()
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
