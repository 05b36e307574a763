package unreal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/zeebo/blake3"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/real"
)

// maxBlocks bounds a block map whatever the blob's size claims.
const maxBlocks = 1 << 24

// maxRunBlocks bounds one request (a run left after a bad block may be
// longer than runBlocks).
const maxRunBlocks = 64

type flightKey struct {
	blob realize.Hash
	i    int
}

// flight is one block being fetched. Every reader that wants the block
// waits on done instead of asking again: one fetch, many readers.
type flight struct {
	done chan struct{}
	data []byte // the verified bytes, set before done is closed
	err  error
}

// mapFlight is one block map being asked for.
type mapFlight struct {
	done chan struct{}
	bm   realize.BlockMap
	err  error
}

// runMode says what becomes of the blocks of a fetch run.
type runMode uint8

const (
	runRead  runMode = iota // a reader waits: store them, keep them in memory
	runAhead                // read-ahead: store them if there is room
	runFill                 // Fill: hand them over only, they go to a real file
)

// fetchRun is a set of blocks of one blob asked for together. Each has a
// flight in Cache.flights, finished by the run.
type fetchRun struct {
	arena realize.ArenaName
	b     *blobState
	idx   []int
	mode  runMode
}

var errBadBlock = errors.New("block does not match its hash")

// checkBlockMap refuses a map that could make us misbehave: too many
// blocks, blocks of size 0 or over real.BlockMax, sizes that do not add
// up to the blob's, or, for a blob of at most real.OneBlockMax bytes,
// anything but the one block named by the blob hash.
func checkBlockMap(blob realize.Hash, bm realize.BlockMap, size int64) error {
	if size < 0 {
		return fmt.Errorf("negative size %d", size)
	}
	if size == 0 {
		if len(bm) != 0 {
			return fmt.Errorf("%d blocks for an empty blob", len(bm))
		}
		return nil
	}
	if size <= real.OneBlockMax {
		if len(bm) != 1 || bm[0].Hash != blob || int64(bm[0].Size) != size {
			return errors.New("a blob of at most one block is the one block named by its hash")
		}
		return nil
	}
	// No block but the last is smaller than real.BlockMin.
	if len(bm) > maxBlocks || int64(len(bm)) > size/real.BlockMin+1 {
		return fmt.Errorf("%d blocks for %d bytes", len(bm), size)
	}
	var sum int64
	for _, b := range bm {
		if b.Size == 0 || b.Size > real.BlockMax {
			return fmt.Errorf("block of %d bytes", b.Size)
		}
		sum += int64(b.Size)
	}
	if sum != size {
		return fmt.Errorf("blocks add up to %d bytes, the blob has %d", sum, size)
	}
	return nil
}

// state returns what the cache knows of blob m.Blob, asking peers for its
// block map if it has more than one block and is not known yet.
func (c *Cache) state(ctx context.Context, arena realize.ArenaName, m realize.Meta) (*blobState, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, &realize.Error{Op: "read", Kind: realize.Unavailable, Arena: arena, Err: errClosed}
	}
	b := c.blobs[m.Blob]
	if b == nil && m.Size <= real.OneBlockMax {
		b = c.newStateLocked(m.Blob, m.Size, realize.BlockMap{{Hash: m.Blob, Size: uint32(m.Size)}})
	}
	if b != nil {
		c.mu.Unlock()
		return b, checkSize(arena, b, m)
	}
	mf := c.maps[m.Blob]
	if mf == nil {
		mf = &mapFlight{done: make(chan struct{})}
		c.maps[m.Blob] = mf
		c.wg.Add(1)
		go c.fetchMap(arena, m, mf)
	}
	c.mu.Unlock()
	if err := c.await(ctx, arena, mf.done, "the block map of "+m.Blob.Short()); err != nil {
		return nil, err
	}
	if mf.err != nil {
		return nil, mf.err
	}
	c.mu.Lock()
	if b = c.blobs[m.Blob]; b == nil {
		b = c.newStateLocked(m.Blob, m.Size, mf.bm)
	}
	c.mu.Unlock()
	return b, checkSize(arena, b, m)
}

func (c *Cache) newStateLocked(blob realize.Hash, size int64, bm realize.BlockMap) *blobState {
	b := newBlobState(blob, size, bm)
	b.access = c.clock.Now().UnixNano()
	c.blobs[blob] = b
	return b
}

func checkSize(arena realize.ArenaName, b *blobState, m realize.Meta) error {
	if b.size != m.Size {
		return &realize.Error{Op: "read", Kind: realize.Invalid, Arena: arena,
			Err: fmt.Errorf("blob %s has %d bytes, not %d", m.Blob.Short(), b.size, m.Size)}
	}
	return nil
}

// await waits for done at most Wait.
func (c *Cache) await(ctx context.Context, arena realize.ArenaName, done <-chan struct{}, what string) error {
	t := time.NewTimer(c.wait)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return &realize.Error{Op: "read", Kind: realize.Canceled, Arena: arena, Err: ctx.Err()}
	case <-t.C:
		return &realize.Error{Op: "read", Kind: realize.Unavailable, Arena: arena,
			Err: fmt.Errorf("no peer sent %s within %v", what, c.wait)}
	}
}

// fetchMap asks for a block map on behalf of every reader waiting for it.
// It runs detached from any one reader, so that a reader giving up does
// not fail the others.
func (c *Cache) fetchMap(arena realize.ArenaName, m realize.Meta, mf *mapFlight) {
	defer c.wg.Done()
	bm, err := c.askMap(arena, m)
	c.mu.Lock()
	// Installed with the flight's end: a reader coming after it finds the
	// state, and does not ask for the map again.
	if err == nil && c.blobs[m.Blob] == nil {
		c.newStateLocked(m.Blob, m.Size, bm)
	}
	delete(c.maps, m.Blob)
	c.mu.Unlock()
	mf.bm, mf.err = bm, err
	close(mf.done)
}

// askMap asks the peers in order; the first valid map wins. A peer that
// sends a hostile map is not asked for anything of the blob again.
func (c *Cache) askMap(arena realize.ArenaName, m realize.Meta) (realize.BlockMap, error) {
	var last error
	var asked, hostile int
	for _, p := range c.src.Sources(arena) {
		if c.badForBlob(m.Blob, p) {
			hostile++
			continue
		}
		asked++
		ctx, cancel := context.WithTimeout(c.ctx, c.peerWait())
		bm, err := c.src.BlockMap(ctx, p, arena, m.Blob)
		cancel()
		if err == nil {
			if err = checkBlockMap(m.Blob, bm, m.Size); err == nil {
				return bm, nil
			}
			hostile++
			c.markBadForBlob(m.Blob, p)
			c.log.Warn("cache: a peer sent a bad block map", "peer", p.Short(), "blob", m.Blob.String(), "err", err)
		}
		last = fmt.Errorf("peer %s: %w", p.Short(), err)
	}
	kind := realize.Unavailable
	if hostile > 0 && hostile == asked || asked == 0 && hostile > 0 {
		kind = realize.Corrupt
	}
	if last == nil {
		last = errors.New("no peer has the arena")
	}
	return nil, &realize.Error{Op: "fetch block map", Kind: kind, Arena: arena, Err: last}
}

func (c *Cache) badForBlob(blob realize.Hash, p realize.PeerID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.badMap[blob][p]
}

func (c *Cache) markBadForBlob(blob realize.Hash, p realize.PeerID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.badMap[blob] == nil {
		c.badMap[blob] = map[realize.PeerID]bool{}
	}
	c.badMap[blob][p] = true
}

// launchLocked starts a run. The caller checked that the cache is open
// (so Close waits for the run).
func (c *Cache) launchLocked(r fetchRun) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.fetch(r)
	}()
}

// fetch gets a run's blocks from the peers in turn and finishes each
// block's flight, with its verified bytes or with an error.
func (c *Cache) fetch(r fetchRun) {
	if r.mode == runAhead {
		defer func() { <-c.aheadQ }()
	}
	want := make(map[int]bool, len(r.idx))
	for _, i := range r.idx {
		want[i] = true
	}
	last := c.fetchFromPeers(r, want)
	if len(want) == 0 {
		return
	}
	if last == nil {
		last = errors.New("no peer has the arena")
	}
	err := &realize.Error{Op: "fetch", Kind: realize.Unavailable, Arena: r.arena,
		Err: fmt.Errorf("%d blocks of %s from no peer: %w", len(want), r.b.hash.Short(), last)}
	for i := range want {
		c.finish(flightKey{r.b.hash, i}, nil, err)
	}
}

func (c *Cache) fetchFromPeers(r fetchRun, want map[int]bool) error {
	var last error
	for _, p := range c.src.Sources(r.arena) {
		if c.badForBlob(r.b.hash, p) {
			continue
		}
		for len(want) > 0 && c.ctx.Err() == nil {
			ask := c.askable(r.b, p, want)
			if len(ask) == 0 {
				if last == nil {
					last = fmt.Errorf("peer %s: %w", p.Short(), errBadBlock)
				}
				break
			}
			bad, err := c.readFrom(r, p, ask, want)
			if err != nil {
				last = fmt.Errorf("peer %s: %w", p.Short(), err)
			}
			if !bad {
				break // done, or the peer failed: the next one gets the rest
			}
			// A bad block is not asked of this peer again; the others are.
		}
		if len(want) == 0 || c.ctx.Err() != nil {
			break
		}
	}
	if last == nil && c.ctx.Err() != nil {
		last = errClosed
	}
	return last
}

// askable returns the wanted blocks p has not sent bad bytes for.
func (c *Cache) askable(b *blobState, p realize.PeerID, want map[int]bool) map[int]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	ask := map[int]bool{}
	for i := range want {
		if !c.badBlock[b.blocks[i].Hash][p] {
			ask[i] = true
		}
	}
	return ask
}

// readFrom asks p for the blocks in ask, one request per run of
// consecutive blocks (a block p got wrong before sits between runs, it is
// not asked for). A request fails after Wait without a block: a stalled
// peer must not hold the run forever. bad reports that p sent a block
// that failed verification.
func (c *Cache) readFrom(r fetchRun, p realize.PeerID, ask, want map[int]bool) (bad bool, err error) {
	idx := make([]int, 0, len(ask))
	for i := range ask {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	for _, run := range runs(idx, maxRunBlocks) {
		if bad, err = c.readRun(r, p, run[0], len(run), want); bad || err != nil {
			return bad, err
		}
	}
	return false, nil
}

func (c *Cache) readRun(r fetchRun, p realize.PeerID, first, n int, want map[int]bool) (bad bool, err error) {
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	stall := time.AfterFunc(c.peerWait(), cancel)
	defer stall.Stop()
	err = c.src.ReadBlocks(ctx, p, r.arena, r.b.hash, first, n, func(i int, data []byte) error {
		stall.Reset(c.peerWait())
		if i < first || i >= first+n || !want[i] {
			return nil
		}
		blk := r.b.blocks[i]
		if len(data) != int(blk.Size) || realize.Hash(blake3.Sum256(data)) != blk.Hash {
			bad = true
			c.rejectFrom(p, r.b, i)
			return errBadBlock // SPEC §5.3: unverified bytes are never used
		}
		delete(want, i)
		c.deliver(r, i, data)
		return nil
	})
	return bad, err
}

// peerWait is how long one peer may stay silent before the next one is
// asked: half of Wait, so that with a stalled first peer the second one
// still answers before the reader gives up.
func (c *Cache) peerWait() time.Duration { return c.wait / 2 }

func (c *Cache) rejectFrom(p realize.PeerID, b *blobState, i int) {
	c.st.rejected.Add(1)
	h := b.blocks[i].Hash
	c.mu.Lock()
	if c.badBlock[h] == nil {
		c.badBlock[h] = map[realize.PeerID]bool{}
	}
	c.badBlock[h][p] = true
	c.mu.Unlock()
	c.log.Warn("cache: a peer sent a block that does not match its hash", "peer", p.Short(), "blob", b.hash.String(), "block", i)
}

// deliver stores a verified block (unless filling a real file) and hands
// it to the readers waiting for it.
func (c *Cache) deliver(r fetchRun, i int, data []byte) {
	cp := bytes.Clone(data) // data is only valid during the callback
	c.st.fetched.Add(int64(len(cp)))
	stored := false
	if r.mode != runFill {
		if stored = c.storeBlock(r.b, i, cp); !stored {
			c.st.passThrough.Add(1)
		}
	}
	if r.mode == runRead || r.mode == runAhead && !stored {
		c.mem.put(r.b.blocks[i].Hash, cp)
	}
	c.finish(flightKey{r.b.hash, i}, cp, nil)
}

func (c *Cache) finish(key flightKey, data []byte, err error) {
	c.mu.Lock()
	f := c.flights[key]
	delete(c.flights, key)
	c.mu.Unlock()
	if f != nil {
		f.data, f.err = data, err
		close(f.done)
	}
}

// runs cuts sorted block indexes into runs of consecutive blocks of at
// most max blocks, one request each.
func runs(idx []int, max int) [][]int {
	var out [][]int
	for _, i := range idx {
		if l := len(out) - 1; l >= 0 && out[l][len(out[l])-1] == i-1 && len(out[l]) < max {
			out[l] = append(out[l], i)
			continue
		}
		out = append(out, []int{i})
	}
	return out
}

// readAhead fetches, in the background, the blocks after a sequential
// read. At most aheadRuns runs are in flight (more reads just skip it),
// and the window never exceeds a quarter of the quota: read-ahead beyond
// that would evict the blocks it fetched before they are read.
func (c *Cache) readAhead(arena realize.ArenaName, b *blobState, next int) {
	if c.ahead < 0 || next >= len(b.blocks) {
		return
	}
	d := c.diskNow()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	budget := c.limitLocked(d) / 4
	var idx []int
	var window int
	var bytes int64
	i := next
	for ; i < len(b.blocks) && i < next+c.ahead; i++ {
		if bytes += int64(b.blocks[i].Size); bytes > budget {
			break
		}
		window++
		if b.elems[i] == nil && c.flights[flightKey{b.hash, i}] == nil && !c.mem.has(b.blocks[i].Hash) {
			idx = append(idx, i)
		}
	}
	// Wait until half a window is missing, so runs are not one block each.
	if len(idx) == 0 || 2*len(idx) < window && i < len(b.blocks) {
		return
	}
	select {
	case c.aheadQ <- struct{}{}:
	default:
		return
	}
	for _, i := range idx {
		c.flights[flightKey{b.hash, i}] = &flight{done: make(chan struct{})}
	}
	c.launchLocked(fetchRun{arena: arena, b: b, idx: idx, mode: runAhead})
}
