package consensus

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/real"
	"github.com/realizefs/realize/unreal"
	"github.com/zeebo/blake3"
)

// BlockSource is what the fetcher needs from the network (defined with
// the cache, which fetches too).
type BlockSource = unreal.BlockSource

// LocalBlocks finds blocks this peer already has (in other files), and
// writes the ones it has into dst, verified. real.Arena implements it.
type LocalBlocks interface {
	CopyLocalBlocks(ctx context.Context, blocks realize.BlockMap, offsets []int64, want []int, dst *os.File) (missing []int, copied int64, err error)
}

// BlockFetcher fetches a blob block by block from whichever peers have
// it, several runs in flight, verifying every block against its hash
// before writing it. A peer that sends a bad block is not asked for that
// block again; another peer is. Blocks already in the destination (a
// transfer resumed after a drop or a restart) are verified and kept.
type BlockFetcher struct {
	Source BlockSource
	// Local, if set, supplies blocks this peer already holds in other
	// files before any is asked of a peer.
	Local LocalBlocks
	// InFlight is the number of concurrent block runs (default: one per
	// peer, at most 8).
	InFlight int
	// RunBlocks is the number of blocks asked for per request (default
	// 1024). Each run travels in order on one stream: long runs keep the
	// transport streaming (docs/decisions/0013-sync-throughput.md).
	RunBlocks int
	// Stats, if set, counts bytes received and bytes reused.
	Stats *FetchStats
}

// FetchStats counts what fetching moved.
type FetchStats struct {
	sync.Mutex

	Received int64 // bytes received from peers (verified)
	Reused   int64 // bytes already present and verified
	Rejected int64 // blocks that failed verification
}

func (s *FetchStats) add(received, reused, rejected int64) {
	if s == nil {
		return
	}
	s.Lock()
	s.Received += received
	s.Reused += reused
	s.Rejected += rejected
	s.Unlock()
}

// Fetch implements Fetcher.
func (bf *BlockFetcher) Fetch(ctx context.Context, arena realize.ArenaName, m realize.Meta, f *os.File, l *real.Landed) error {
	peers := bf.Source.Sources(arena)
	if len(peers) == 0 {
		return &realize.Error{Op: "fetch", Kind: realize.Unavailable, Arena: arena, Err: errors.New("no peer connected")}
	}
	blocks, err := bf.blockMap(ctx, peers, arena, m)
	if err != nil {
		return err
	}
	offsets := make([]int64, len(blocks)+1)
	for i, b := range blocks {
		offsets[i+1] = offsets[i] + int64(b.Size)
	}
	l.Blocks(blocks)
	dst := &landing{f: f, l: l, offsets: offsets}
	info, err := f.Stat()
	if err != nil {
		return &realize.Error{Op: "fetch", Kind: realize.IO, Arena: arena, Err: err}
	}
	if err := f.Truncate(m.Size); err != nil {
		return &realize.Error{Op: "fetch", Kind: realize.IO, Arena: arena, Err: err}
	}
	var missing []int
	if info.Size() == 0 {
		// A new temporary file holds nothing: reading it back to look for
		// blocks would only fault in zero pages.
		for i := range blocks {
			missing = append(missing, i)
		}
	} else {
		missing = bf.present(dst, blocks, offsets)
	}
	if bf.Local != nil && len(missing) > 0 {
		want := missing
		var copied int64
		if missing, copied, err = bf.Local.CopyLocalBlocks(ctx, blocks, offsets, want, f); err != nil {
			return err
		}
		dst.landedExcept(want, missing)
		bf.Stats.add(0, copied, 0)
	}
	return bf.fetchMissing(ctx, peers, arena, m.Blob, blocks, missing, dst)
}

// landing is the destination of a fetch: the file, and whom to tell which
// blocks hold their final, verified bytes.
type landing struct {
	f       *os.File
	l       *real.Landed
	offsets []int64
}

func (d *landing) landed(i int) { d.l.Range(d.offsets[i], d.offsets[i+1]-d.offsets[i]) }

// write writes block i's verified bytes (and reports them).
func (d *landing) write(i int, data []byte) error {
	if d.l != nil {
		return d.l.Write(d.offsets[i], data)
	}
	_, err := d.f.WriteAt(data, d.offsets[i])
	return err
}

// landedExcept reports the blocks of want (ascending) not in missing (a
// subsequence of want).
func (d *landing) landedExcept(want, missing []int) {
	for _, i := range want {
		if len(missing) > 0 && missing[0] == i {
			missing = missing[1:]
			continue
		}
		d.landed(i)
	}
}

// blockMap asks the peers in turn for the block map, and accepts one only
// if its sizes add up to the blob's (the bytes are checked block by block,
// and the whole blob once more when placed).
func (bf *BlockFetcher) blockMap(ctx context.Context, peers []realize.PeerID, arena realize.ArenaName, m realize.Meta) (realize.BlockMap, error) {
	// Content of at most real.OneBlockMax bytes is one block named by the
	// blob hash (the format's one-block rule): no need to ask.
	if m.Size == 0 {
		return nil, nil
	}
	if m.Size <= real.OneBlockMax {
		return realize.BlockMap{{Hash: m.Blob, Size: uint32(m.Size)}}, nil
	}
	var last error
	for _, p := range peers {
		bm, err := bf.Source.BlockMap(ctx, p, arena, m.Blob)
		if err != nil {
			last = err
			continue
		}
		if err := checkBlockMap(bm, m.Size); err != nil {
			last = fmt.Errorf("peer %s sent a bad block map: %w", p.Short(), err)
			continue
		}
		return bm, nil
	}
	return nil, &realize.Error{Op: "fetch block map", Kind: realize.Unavailable, Arena: arena, Err: last}
}

// MaxBlockSize is the largest block any peer may announce (the chunker's
// maximum); the fetcher's buffers are sized by it.
const MaxBlockSize = 1 << 20

// checkBlockMap refuses a map a peer could use to make us misbehave:
// blocks of size 0 or over MaxBlockSize, too many blocks, or sizes that do
// not add up to the blob's.
func checkBlockMap(bm realize.BlockMap, size int64) error {
	if int64(len(bm)) > size || len(bm) > 1<<24 {
		return fmt.Errorf("%d blocks for %d bytes", len(bm), size)
	}
	var sum int64
	for _, b := range bm {
		if b.Size == 0 || b.Size > MaxBlockSize {
			return fmt.Errorf("block of %d bytes", b.Size)
		}
		sum += int64(b.Size)
	}
	if sum != size {
		return fmt.Errorf("blocks add up to %d bytes, the blob has %d", sum, size)
	}
	return nil
}

// present returns the indexes of blocks the destination does not already
// hold (verified by hash).
func (bf *BlockFetcher) present(dst *landing, blocks realize.BlockMap, offsets []int64) []int {
	var missing []int
	buf := make([]byte, 0, 1<<20)
	var reused int64
	for i, b := range blocks {
		buf = buf[:b.Size]
		if _, err := dst.f.ReadAt(buf, offsets[i]); err == nil && realize.Hash(blake3.Sum256(buf)) == b.Hash {
			reused += int64(b.Size)
			dst.landed(i)
			continue
		}
		missing = append(missing, i)
	}
	bf.Stats.add(0, reused, 0)
	return missing
}

// run is a range of consecutive missing blocks asked for in one request.
type run struct{ first, n int }

func runs(missing []int, max int) []run {
	var out []run
	for _, i := range missing {
		if l := len(out) - 1; l >= 0 && out[l].first+out[l].n == i && out[l].n < max {
			out[l].n++
			continue
		}
		out = append(out, run{i, 1})
	}
	return out
}

func (bf *BlockFetcher) fetchMissing(ctx context.Context, peers []realize.PeerID, arena realize.ArenaName, blob realize.Hash,
	blocks realize.BlockMap, missing []int, dst *landing) error {
	inFlight, per := bf.InFlight, bf.RunBlocks
	if inFlight <= 0 {
		inFlight = min(len(peers), 8)
	}
	if per <= 0 {
		per = 1024
	}
	todo := runs(missing, per)
	inFlight = max(1, min(inFlight, len(todo)))
	work := make(chan run)
	errs := make(chan error, inFlight)
	var wg sync.WaitGroup
	for w := 0; w < inFlight; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for r := range work {
				if err := bf.fetchRun(ctx, peers, w, arena, blob, blocks, r, dst); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	var err error
feed:
	for _, r := range todo {
		select {
		case work <- r:
		case err = <-errs:
			break feed
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		}
	}
	close(work)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	return err
}

// fetchRun gets one run of blocks, trying peers in turn (starting at a
// different one per worker, to spread the load). Blocks a peer got wrong
// are asked of the next peer.
func (bf *BlockFetcher) fetchRun(ctx context.Context, peers []realize.PeerID, w int, arena realize.ArenaName, blob realize.Hash,
	blocks realize.BlockMap, r run, dst *landing) error {
	todo := map[int]bool{}
	for i := r.first; i < r.first+r.n; i++ {
		todo[i] = true
	}
	var last error
	for k := 0; k < len(peers) && len(todo) > 0; k++ {
		peer := peers[(w+k)%len(peers)]
		first, n := span(todo)
		err := bf.Source.ReadBlocks(ctx, peer, arena, blob, first, n, func(i int, data []byte) error {
			if !todo[i] {
				return nil
			}
			if i < 0 || i >= len(blocks) || len(data) != int(blocks[i].Size) || realize.Hash(blake3.Sum256(data)) != blocks[i].Hash {
				bf.Stats.add(0, 0, 1)
				return errBadBlock // invariant 3: never write unverified bytes
			}
			if err := dst.write(i, data); err != nil {
				return &realize.Error{Op: "fetch", Kind: realize.IO, Arena: arena, Err: err}
			}
			bf.Stats.add(int64(len(data)), 0, 0)
			delete(todo, i)
			return nil
		})
		if realize.KindOf(err) == realize.IO || errors.Is(err, context.Canceled) {
			return err
		}
		if err != nil {
			last = fmt.Errorf("peer %s: %w", peer.Short(), err)
		}
	}
	if len(todo) > 0 {
		return &realize.Error{Op: "fetch", Kind: realize.Unavailable, Arena: arena,
			Err: fmt.Errorf("%d blocks of %s from no peer: %v", len(todo), blob.Short(), last)}
	}
	return nil
}

var errBadBlock = errors.New("block does not match its hash")

// span returns the smallest run covering the blocks still to do.
func span(todo map[int]bool) (first, n int) {
	first, last := -1, -1
	for i := range todo {
		if first < 0 || i < first {
			first = i
		}
		if i > last {
			last = i
		}
	}
	return first, last - first + 1
}

var _ Fetcher = (*BlockFetcher)(nil)
