package real

import (
	"context"
	"io"

	chunkers "github.com/PlakarKorp/go-cdc-chunkers"
	_ "github.com/PlakarKorp/go-cdc-chunkers/chunkers/jc" // registers ChunkAlgorithm
	"github.com/zeebo/blake3"

	"github.com/realizefs/realize"
)

// Block boundaries are part of the protocol: peers exchange block hashes, so
// two peers must cut the same bytes at the same places. The algorithm is
// named by its versioned identifier, never by a floating alias such as "jc",
// so that a library upgrade that changes the default variant cannot silently
// change every block map in the household. Changing any of these values is a
// wire-incompatible change.
const (
	ChunkAlgorithm = "jc-v1.1.0"
	BlockMin       = 64 << 10  // no block but the last is smaller
	BlockAvg       = 256 << 10 // the chunker's target size
	BlockMax       = 1 << 20   // no block is larger

	// OneBlockMax is the largest content that is not chunked at all: it
	// is one block whose hash is the blob hash. Most files are smaller than
	// this, and cutting them into a few blocks would cost a second BLAKE3
	// pass over every byte (indexing ran at ~0.4x of b3sum with it, ~0.9x
	// without, see docs/decisions/0004-chunking.md) for little gain: a
	// changed file of at most 1 MiB is cheap to send whole.
	OneBlockMax = BlockMax
)

// chunkBufSize is the chunker's scan buffer. The library needs ≥ BlockMax;
// twice that lets it refill in large strides instead of compacting after
// most chunks (about 20% faster, measured by the library authors).
const chunkBufSize = 2 * BlockMax

// pipelineMin is the size from which HashFile may compute the blob hash on a
// second goroutine, side by side with chunking and block hashing. A large
// file (a video, a disk image) is often the one an indexing pass, or a peer
// waiting for a new version, waits for; there the two BLAKE3 passes (blob and
// blocks) running at once cut the time by about a quarter. When every CPU
// is already hashing another file the hand-off only costs (copying and
// waking a goroutine: 15-20% less total throughput, measured), so it is used
// only while at most half the CPUs are busy hashing; see Hasher.hashOpen.
const pipelineMin = 8 << 20

// segmentSize is the unit handed to the blob goroutine. It is large so that
// waking a goroutine (tens of microseconds on a VM) is rare next to the work,
// and small enough to be hashed while still in cache: measured, 1 MiB and
// 8 MiB both did worse than 4 MiB.
const segmentSize = 4 << 20

func chunkerOpts() *chunkers.ChunkerOpts {
	return &chunkers.ChunkerOpts{MinSize: BlockMin, NormalSize: BlockAvg, MaxSize: BlockMax}
}

// hashWorker holds everything one hashing needs, so that a Hasher can pool
// it: memory then scales with the number of concurrent hashings, not with
// the number of files hashed.
type hashWorker struct {
	chunker *chunkers.Chunker
	blob    *blake3.Hasher
	block   *blake3.Hasher
	small   []byte // OneBlockMax+1: tells one-block content from the rest
	src     ctxReader
	pre     prefixReader
	tee     blobTee // only for content of at least pipelineMin bytes
	// known, if set, returns a block's hash when it is known verified
	// already (Hasher.hashLanded): that block is not hashed again.
	known func(off int64, n int) (realize.Hash, bool)
}

func newHashWorker() (*hashWorker, error) {
	c, err := chunkers.NewChunkerBuffer(ChunkAlgorithm, nil, chunkerOpts(), make([]byte, chunkBufSize))
	if err != nil {
		return nil, realize.E("new chunker", realize.Other, err)
	}
	return &hashWorker{
		chunker: c,
		blob:    blake3.New(),
		block:   blake3.New(),
		small:   make([]byte, OneBlockMax+1),
	}, nil
}

// hash computes the blob hash and block map of everything r yields.
// Content of at most OneBlockMax bytes is one block whose hash is the blob
// hash, so it is hashed once; anything longer is read once and each chunk feeds
// both the blob hasher and the block hasher. With pipeline set, the blob is
// hashed on a second goroutine.
func (w *hashWorker) hash(ctx context.Context, r io.Reader, sizeHint int64, pipeline bool) (Hashed, error) {
	w.src = ctxReader{ctx: ctx, r: r}
	w.pre = prefixReader{r: &w.src}
	defer func() { w.src, w.pre = ctxReader{}, prefixReader{} }()
	// Content expected to span blocks skips the probe; should it be short
	// after all, chunks turns the result into one block.
	if sizeHint <= OneBlockMax {
		n, err := io.ReadFull(&w.src, w.small)
		switch err {
		case nil:
		case io.EOF, io.ErrUnexpectedEOF:
			return oneBlock(w.small[:n]), nil
		default:
			return Hashed{}, err
		}
		w.pre.pre = w.small[:n] // handed to the chunker, not read again
	}
	w.chunker.Reset(&w.pre)
	return w.chunks(sizeHint, pipeline)
}

// oneBlock is the identity of content of at most OneBlockMax bytes.
// Empty content has no blocks: there is nothing to fetch.
func oneBlock(b []byte) Hashed {
	sum := blake3.Sum256(b)
	hs := Hashed{Blob: sum, Size: int64(len(b))}
	if len(b) > 0 {
		hs.Blocks = realize.BlockMap{{Hash: sum, Size: uint32(len(b))}}
	}
	return hs
}

// chunks drains the chunker. Chunk slices alias the chunker's buffer and are
// only valid until the next call to Next, so the blob hasher is fed from each
// chunk before the loop moves on — or, for large content, from a copy of what
// the chunker reads (see blobTee).
func (w *hashWorker) chunks(sizeHint int64, tee bool) (Hashed, error) {
	w.blob.Reset()
	blocks := make(realize.BlockMap, 0, blockCapHint(sizeHint))
	if tee {
		w.tee.start(w.blob, &w.pre)
		defer w.tee.stop()
		w.chunker.Reset(&w.tee)
	}
	var size int64
	for {
		chunk, err := w.chunker.Next()
		if err != nil && err != io.EOF {
			return Hashed{}, err
		}
		if len(chunk) > 0 {
			if !tee {
				_, _ = w.blob.Write(chunk) // never fails
			}
			blocks = append(blocks, realize.Block{Hash: w.chunkHash(size, chunk), Size: uint32(len(chunk))})
			size += int64(len(chunk))
		}
		if err == io.EOF {
			break
		}
	}
	if tee {
		w.tee.stop()
	}
	var hs Hashed
	w.blob.Sum(hs.Blob[:0])
	hs.Size = size
	hs.Blocks = blocks
	if size <= OneBlockMax {
		// Shorter than its size hint said: the one-block rule still holds.
		hs.Blocks = blocks[:0]
		if size > 0 {
			hs.Blocks = append(hs.Blocks, realize.Block{Hash: hs.Blob, Size: uint32(size)})
		}
	}
	return hs, nil
}

// chunkHash returns the hash of the chunk at offset off.
func (w *hashWorker) chunkHash(off int64, chunk []byte) realize.Hash {
	if w.known != nil {
		if h, ok := w.known(off, len(chunk)); ok {
			return h
		}
	}
	return w.blockHash(chunk)
}

func (w *hashWorker) blockHash(chunk []byte) realize.Hash {
	var h realize.Hash
	w.block.Reset()
	_, _ = w.block.Write(chunk) // never fails
	w.block.Sum(h[:0])
	return h
}

// blockCapHint sizes the block map for the expected number of blocks so that
// it is allocated once for typical content.
func blockCapHint(size int64) int {
	if size <= 0 {
		return 8
	}
	return int(min(size/BlockAvg+2, 1<<16))
}

// blobTee sits between the source and the chunker and copies every byte the
// chunker reads into one of two segments; a second goroutine hashes full
// segments into the blob hasher while the chunker fills the other one. The
// blob hash thus covers exactly the bytes that were chunked, in order, from
// a single read of the file.
type blobTee struct {
	r      io.Reader
	seg    [2][]byte
	cur    int  // the segment being filled
	n      int  // bytes in it
	busy   bool // the other segment is being hashed
	work   chan []byte
	done   chan struct{} // one segment hashed
	exited chan struct{}
}

func (t *blobTee) start(h *blake3.Hasher, r io.Reader) {
	if t.seg[0] == nil {
		t.seg = [2][]byte{make([]byte, segmentSize), make([]byte, segmentSize)}
	}
	t.r, t.cur, t.n, t.busy = r, 0, 0, false
	t.work, t.done, t.exited = make(chan []byte), make(chan struct{}), make(chan struct{})
	go func(work <-chan []byte, done, exited chan<- struct{}) {
		defer close(exited)
		for b := range work {
			_, _ = h.Write(b)
			done <- struct{}{}
		}
	}(t.work, t.done, t.exited)
}

func (t *blobTee) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	for b := p[:n]; len(b) > 0; {
		c := copy(t.seg[t.cur][t.n:], b)
		t.n += c
		b = b[c:]
		if t.n == segmentSize {
			t.flush()
		}
	}
	return n, err
}

// flush hands the current segment to the goroutine once it is done with the
// previous one.
func (t *blobTee) flush() {
	if t.busy {
		<-t.done
	}
	t.work <- t.seg[t.cur][:t.n]
	t.busy = true
	t.cur ^= 1
	t.n = 0
}

// stop hashes what is left, ends the goroutine and waits for it; the blob
// hasher then belongs to the caller again. Calling it twice is harmless.
func (t *blobTee) stop() {
	if t.work == nil {
		return
	}
	if t.n > 0 {
		t.flush()
	}
	if t.busy {
		<-t.done
	}
	close(t.work)
	<-t.exited
	*t = blobTee{seg: t.seg}
}

// ctxReader stops a long hashing between reads once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// prefixReader yields pre, then r: the bytes read to rule out the one-block
// case are handed to the chunker without seeking back.
type prefixReader struct {
	pre []byte
	r   io.Reader
}

func (p *prefixReader) Read(b []byte) (int, error) {
	if len(p.pre) > 0 {
		n := copy(b, p.pre)
		p.pre = p.pre[n:]
		return n, nil
	}
	return p.r.Read(b)
}
