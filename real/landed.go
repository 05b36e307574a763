package real

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"

	"github.com/realizefs/realize"
)

// Landed is how a Fill tells Place which bytes of the temporary file are
// final, so that Place hashes the blob while the rest is still arriving
// instead of reading the whole file again once it is complete (see
// docs/decisions/0010-hash-while-filling.md). Reporting is optional: bytes
// never reported are hashed after Fill returns. A nil *Landed ignores
// every report.
//
// The contract for a Fill that reports: a range passed to Range holds its
// final bytes and is not written again, and, after Blocks(bm), a range
// that is exactly one block of bm was verified against that block's hash.
type Landed struct {
	f    *os.File
	name string // f's name, to open it again for direct I/O
	size int64

	mu     sync.Mutex
	wake   *sync.Cond
	mark   int64           // [0, mark) is final
	ahead  map[int64]int64 // reported ranges beyond mark: start → end
	blocks realize.BlockMap
	starts map[int64]int   // offset → index in blocks
	ok     map[int64]int64 // verified block ranges: start → length
	end    error           // set when Fill returned: nil (all final) or why not
	ended  bool

	direct      *directWriter // set at the first Write of a large file, if possible
	directTried bool
}

func newLanded(f *os.File, size int64) *Landed {
	l := &Landed{f: f, name: f.Name(), size: size, ahead: map[int64]int64{}, ok: map[int64]int64{}}
	l.wake = sync.NewCond(&l.mu)
	return l
}

// Blocks names the block map the Fill verifies blocks against. Call it
// before reporting any range.
func (l *Landed) Blocks(bm realize.BlockMap) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.blocks, l.starts = bm, make(map[int64]int, len(bm))
	var off int64
	for i, b := range bm {
		l.starts[off] = i
		off += int64(b.Size)
	}
}

// Write writes verified bytes at off and reports them final (as Range)
// once they are in the file. A large file is written around the page
// cache where the system allows it (direct.go); its bytes then reach the
// file in aligned segments, some only when the Fill returns.
func (l *Landed) Write(off int64, data []byte) error {
	if d := l.directWriter(); d != nil {
		return d.write(off, data)
	}
	if _, err := l.f.WriteAt(data, off); err != nil {
		return err
	}
	l.Range(off, int64(len(data)))
	return nil
}

// directWriter returns the writer around the page cache, opening it at
// the first Write of a large file; nil if there is none.
func (l *Landed) directWriter() *directWriter {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.direct == nil && !l.directTried && l.size >= directMin && l.name != "" {
		l.directTried = true
		if f, err := openDirect(l.name); err == nil {
			l.direct = newDirectWriter(l, f)
		}
	}
	return l.direct
}

// directReader returns the writer around the page cache if Write used
// one: what it wrote is read back the same way.
func (l *Landed) directReader() *directWriter {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.direct
}

// flush writes what Write still holds (Fill has returned) and closes
// what it opened; the hashing of the file must be over.
func (l *Landed) flush() error {
	if d := l.directReader(); d != nil {
		return d.finish()
	}
	return nil
}

// close releases the file opened for direct I/O, once nothing reads.
func (l *Landed) close() {
	if d := l.directReader(); d != nil {
		d.direct.Close()
	}
}

// Range reports that [off, off+n) holds its final bytes.
func (l *Landed) Range(off, n int64) {
	if l == nil || n <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if i, isStart := l.starts[off]; isStart && int64(l.blocks[i].Size) == n {
		l.ok[off] = n
	}
	if off > l.mark {
		l.ahead[off] = max(l.ahead[off], off+n)
		return
	}
	l.mark = max(l.mark, off+n)
	for end, found := l.ahead[l.mark]; found; end, found = l.ahead[l.mark] {
		delete(l.ahead, l.mark)
		l.mark = max(l.mark, end)
	}
	l.wake.Broadcast()
}

// finish marks the end of Fill: with err nil every byte is final.
func (l *Landed) finish(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.end, l.ended = err, true
	l.wake.Broadcast()
}

// knownBlock returns the verified hash of the block at [off, off+n), if
// the Fill reported one there.
func (l *Landed) knownBlock(off int64, n int) (realize.Hash, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ok[off] != int64(n) {
		return realize.Hash{}, false
	}
	return l.blocks[l.starts[off]].Hash, true
}

// oneBlock returns the identity of content that is a single verified
// block: its hash is the blob hash, so nothing needs reading again.
func (l *Landed) oneBlock(m realize.Meta) (Hashed, bool) {
	if m.Size == 0 || m.Size > OneBlockMax {
		return Hashed{}, false
	}
	h, ok := l.knownBlock(0, int(m.Size))
	if !ok || h != m.Blob {
		return Hashed{}, false
	}
	return Hashed{Blob: h, Size: m.Size, Blocks: realize.BlockMap{{Hash: h, Size: uint32(m.Size)}}}, true
}

// errFillFailed ends the hashing of a fill that failed.
var errFillFailed = errors.New("fill failed")

// reader yields the file's bytes in order, each as soon as it is final.
func (l *Landed) reader() io.Reader { return &landedReader{l: l} }

type landedReader struct {
	l       *Landed
	pos     int64
	flushed int64  // writeback started up to here
	abuf    []byte // aligned buffer for direct reads
}

// directReadMax is the most one direct read takes.
const directReadMax = 4 << 20

// writebackEvery is how much hashed data accumulates before its writeback
// to disk is started.
const writebackEvery = 32 << 20

func (r *landedReader) Read(p []byte) (int, error) {
	limit, err := r.l.wait(r.pos)
	if err != nil {
		return 0, err
	}
	if r.pos >= limit {
		return 0, io.EOF
	}
	n, err := r.readAt(p[:min(int64(len(p)), limit-r.pos)])
	r.pos += int64(n)
	if r.pos-r.flushed >= writebackEvery {
		startWriteback(r.l.f, r.flushed, r.pos-r.flushed)
		r.flushed = r.pos
	}
	if err == io.EOF && n > 0 {
		err = nil // the file is shorter than it should be: the next read says so
	}
	return n, err
}

// readAt reads at r.pos: around the page cache if the file was written
// so (reading it back through the cache would fill it after all).
func (r *landedReader) readAt(p []byte) (int, error) {
	d := r.l.directReader()
	if d == nil {
		return r.l.f.ReadAt(p, r.pos)
	}
	if r.abuf == nil {
		r.abuf = alignedBuffer(directReadMax + 2*directAlign)
	}
	return d.readAt(p[:min(len(p), directReadMax)], r.abuf, r.pos)
}

// wait blocks until bytes at pos are final (or there are none) and returns
// how far they are.
func (l *Landed) wait(pos int64) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for pos >= l.mark && !l.ended {
		l.wake.Wait()
	}
	switch {
	case l.ended && l.end != nil:
		return 0, errFillFailed
	case l.ended:
		return l.size, nil
	}
	return l.mark, nil
}

// follow starts hashing the file as it lands; the returned function waits
// for the result, once finish was called. Content of at most OneBlockMax
// bytes is hashed after the fill (it is one block: often verified whole
// already, see oneBlock).
func (l *Landed) follow(ctx context.Context, h *Hasher) func() (Hashed, error) {
	type result struct {
		h   Hashed
		err error
	}
	if l.size <= OneBlockMax {
		return func() (Hashed, error) { return h.hashLanded(ctx, l) }
	}
	c := make(chan result, 1)
	go func() {
		hs, err := h.hashLanded(ctx, l)
		c <- result{hs, err}
	}()
	return func() (Hashed, error) { r := <-c; return r.h, r.err }
}
