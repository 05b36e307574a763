package unreal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/zeebo/blake3"

	"github.com/realizefs/realize"
)

// fillWindow is how many blocks Fill asks for at once (in runs of
// runBlocks, so two runs in flight).
const fillWindow = 2 * runBlocks

// seqSlack: a read starting this close to where the previous one ended
// counts as sequential (NFS clients issue several reads at once, which
// arrive slightly out of order).
const seqSlack = 2 << 20

// ReadAt reads bytes [off, off+len(p)) of blob m.Blob (m.Size bytes) of
// arena into p, with io.ReaderAt semantics. Only the blocks covering the
// range are fetched (and, on sequential access, a few after it in the
// background). Every block is verified against its hash before a byte of
// it is copied into p, whether it comes from a peer, from the disk or from
// memory (where only verified bytes are kept).
func (c *Cache) ReadAt(ctx context.Context, arena realize.ArenaName, m realize.Meta, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, &realize.Error{Op: "read", Kind: realize.Invalid, Arena: arena, Err: fmt.Errorf("negative offset %d", off)}
	}
	if len(p) == 0 {
		return 0, nil
	}
	if off >= m.Size {
		return 0, io.EOF
	}
	end := min(off+int64(len(p)), m.Size)
	b, err := c.state(ctx, arena, m)
	if err != nil {
		return 0, err
	}
	first, last := b.blockAt(off), b.blockAt(end-1)
	into := func(i int) []byte {
		if b.offs[i] >= off && b.offs[i+1] <= end {
			return p[b.offs[i]-off : b.offs[i+1]-off]
		}
		return nil
	}
	n := 0
	err = c.getBlocks(ctx, arena, b, first, last, runRead, into, func(i int, data []byte) error {
		lo, hi := max(off, b.offs[i]), min(end, b.offs[i+1])
		dst, src := p[lo-off:hi-off], data[lo-b.offs[i]:hi-b.offs[i]]
		if &dst[0] != &src[0] { // read straight into p: already in place
			copy(dst, src)
		}
		n = int(hi - off)
		return nil
	})
	if err != nil {
		return n, err
	}
	c.afterRead(arena, b, off, end, last)
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// afterRead notes the access and starts read-ahead when reads are
// sequential.
func (c *Cache) afterRead(arena realize.ArenaName, b *blobState, off, end int64, last int) {
	c.mu.Lock()
	seq := b.lastEnd > 0 && off >= b.lastEnd-seqSlack && off <= b.lastEnd+seqSlack
	if seq {
		b.lastEnd = max(b.lastEnd, end)
	} else {
		b.lastEnd = end
	}
	c.touchLocked(b)
	c.mu.Unlock()
	if seq {
		c.readAhead(arena, b, last+1)
	}
}

// Fill writes the whole blob into f from offset 0: blocks in the cache
// are verified and copied, missing ones fetched (and not stored in the
// cache, since f is where they are going). progress, if set, is called
// with the bytes done after each block.
func (c *Cache) Fill(ctx context.Context, arena realize.ArenaName, m realize.Meta, f *os.File, progress func(int64)) error {
	if m.Size == 0 {
		return nil
	}
	b, err := c.state(ctx, arena, m)
	if err != nil {
		return err
	}
	var done int64
	for first := 0; first < len(b.blocks); first += fillWindow {
		last := min(first+fillWindow, len(b.blocks)) - 1
		err := c.getBlocks(ctx, arena, b, first, last, runFill, nil, func(i int, data []byte) error {
			if _, err := f.WriteAt(data, b.offs[i]); err != nil {
				return &realize.Error{Op: "fill", Kind: realize.IO, Arena: arena, Path: f.Name(), Err: err}
			}
			done += int64(len(data))
			if progress != nil {
				progress(done)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// blockSource says where planned block bytes come from.
type blockSource struct {
	mem  []byte  // verified bytes in memory
	disk bool    // the blob file
	f    *flight // a fetch under way
}

// getBlocks obtains blocks first..last of b, verified, and calls fn with
// each in order (data is valid during the call only). into, if set, says
// where a block may be read directly (the reader's buffer).
func (c *Cache) getBlocks(ctx context.Context, arena realize.ArenaName, b *blobState, first, last int, mode runMode,
	into func(int) []byte, fn func(i int, data []byte) error) error {
	srcs, err := c.plan(arena, b, first, last, mode)
	if err != nil {
		return err
	}
	timer := time.NewTimer(c.wait)
	defer timer.Stop()
	var buf []byte
	for k, s := range srcs {
		i := first + k
		data, err := c.obtain(ctx, arena, b, i, s, mode, into, &buf, timer)
		if err != nil {
			return err
		}
		if err := fn(i, data); err != nil {
			return err
		}
	}
	return nil
}

// plan decides, under one lock, where each block comes from, and starts
// fetching the missing ones (in runs, before any is waited for).
func (c *Cache) plan(arena realize.ArenaName, b *blobState, first, last int, mode runMode) ([]blockSource, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, &realize.Error{Op: "read", Kind: realize.Unavailable, Arena: arena, Err: errClosed}
	}
	srcs := make([]blockSource, last-first+1)
	var missing []int
	for i := first; i <= last; i++ {
		s := &srcs[i-first]
		key := flightKey{b.hash, i}
		if b.elems[i] != nil {
			c.lru.MoveToFront(b.elems[i])
		}
		if s.mem = c.mem.get(b.blocks[i].Hash); s.mem != nil {
			continue
		}
		switch {
		case b.elems[i] != nil:
			s.disk = true
		case c.flights[key] != nil:
			s.f = c.flights[key]
		default:
			s.f = &flight{done: make(chan struct{})}
			c.flights[key] = s.f
			missing = append(missing, i)
		}
	}
	for _, r := range runs(missing, runBlocks) {
		c.launchLocked(fetchRun{arena: arena, b: b, idx: r, mode: mode})
	}
	c.touchLocked(b)
	return srcs, nil
}

// obtain returns block i's verified bytes from where plan said, falling
// back to fetching when the disk copy is gone or damaged.
func (c *Cache) obtain(ctx context.Context, arena realize.ArenaName, b *blobState, i int, s blockSource, mode runMode,
	into func(int) []byte, buf *[]byte, timer *time.Timer) ([]byte, error) {
	switch {
	case s.mem != nil:
		c.st.hits.Add(1)
		return s.mem, nil
	case s.disk:
		var dst []byte
		if into != nil {
			dst = into(i)
		}
		keep := dst == nil && mode == runRead // a partial read: the next one likely wants the rest
		if dst == nil {
			dst = c.buffer(buf, int(b.blocks[i].Size), keep)
		}
		if c.readDisk(b, i, dst) {
			c.st.hits.Add(1)
			if keep {
				c.mem.put(b.blocks[i].Hash, dst)
			}
			return dst, nil
		}
		f, err := c.join(arena, b, i, mode)
		if err != nil {
			return nil, err
		}
		s.f = f
	}
	c.st.misses.Add(1)
	return c.waitFlight(ctx, arena, b, i, s.f, timer)
}

// buffer returns n bytes to read a block into: fresh if it is to be kept
// in memory, else the reused buffer.
func (c *Cache) buffer(buf *[]byte, n int, fresh bool) []byte {
	if fresh {
		return make([]byte, n)
	}
	if cap(*buf) < n {
		*buf = make([]byte, n)
	}
	return (*buf)[:n]
}

// join returns the flight of block i, starting one if none is under way.
func (c *Cache) join(arena realize.ArenaName, b *blobState, i int, mode runMode) (*flight, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, &realize.Error{Op: "read", Kind: realize.Unavailable, Arena: arena, Err: errClosed}
	}
	key := flightKey{b.hash, i}
	if f := c.flights[key]; f != nil {
		return f, nil
	}
	f := &flight{done: make(chan struct{})}
	c.flights[key] = f
	c.launchLocked(fetchRun{arena: arena, b: b, idx: []int{i}, mode: mode})
	return f, nil
}

// waitFlight waits at most Wait for a fetched block: a read never hangs on
// peers that do not answer.
func (c *Cache) waitFlight(ctx context.Context, arena realize.ArenaName, b *blobState, i int, f *flight, timer *time.Timer) ([]byte, error) {
	timer.Reset(c.wait)
	select {
	case <-f.done:
		return f.data, f.err
	case <-ctx.Done():
		return nil, &realize.Error{Op: "read", Kind: realize.Canceled, Arena: arena, Err: ctx.Err()}
	case <-timer.C:
		return nil, &realize.Error{Op: "read", Kind: realize.Unavailable, Arena: arena,
			Err: fmt.Errorf("block %d of %s did not arrive within %v", i, b.hash.Short(), c.wait)}
	}
}

// readDisk reads block i from the blob file into dst and verifies it.
// false: the block is not there after all (evicted since planned), or it
// is damaged (then it is dropped, to be refetched).
func (c *Cache) readDisk(b *blobState, i int, dst []byte) bool {
	b.io.RLock()
	defer b.io.RUnlock()
	c.mu.Lock()
	ok := !b.gone && b.elems[i] != nil
	c.mu.Unlock()
	if !ok {
		return false
	}
	f, err := os.Open(c.path(b.hash))
	if err == nil {
		_, err = f.ReadAt(dst, b.offs[i])
		f.Close()
	}
	if err == nil && realize.Hash(blake3.Sum256(dst)) == b.blocks[i].Hash {
		return true
	}
	if err == nil {
		err = errBadBlock
	}
	c.mu.Lock()
	c.markAbsentLocked(b, i)
	c.mu.Unlock()
	c.st.rejected.Add(1)
	c.log.Warn("cache: a cached block is damaged; fetching it again", "blob", b.hash.String(), "block", i, "err", err)
	return false
}

// storeBlock writes a verified block to the blob file if the quota has
// room for it (evicting if needed), and records it present once written.
func (c *Cache) storeBlock(b *blobState, i int, data []byte) bool {
	size := int64(len(data))
	if !c.reserve(size) {
		return false
	}
	b.io.RLock()
	defer b.io.RUnlock()
	c.mu.Lock()
	skip := b.gone || b.elems[i] != nil
	c.mu.Unlock()
	var err error
	if !skip {
		err = c.writeBlock(b, i, data)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reserved -= size
	if skip || err != nil {
		return !b.gone && b.elems[i] != nil
	}
	c.markPresentLocked(b, i) // after the write: never claim a block not written
	return true
}

func (c *Cache) writeBlock(b *blobState, i int, data []byte) error {
	f, err := os.OpenFile(c.path(b.hash), os.O_WRONLY|os.O_CREATE, 0o600)
	if err == nil {
		_, err = f.WriteAt(data, b.offs[i])
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		c.log.Warn("cache: cannot store a block; serving it without", "blob", b.hash.String(), "err", err)
		return errors.Join(errors.New("store block"), err)
	}
	return nil
}
