package real

import (
	"io"
	"os"
	"sort"
	"sync"
	"unsafe"
)

// A large file received from peers is written around the page cache
// (O_DIRECT, where the system has it): its pages would only push out what
// the user works with, and on the machines this was measured on, filling
// new page cache cost about 2 s of system time per GiB against 0.2 s for
// direct writes (docs/decisions/0013-sync-throughput.md). Direct I/O wants
// aligned offsets, lengths and memory, and blocks are content-defined: so
// verified blocks are gathered into aligned segments, each written once
// it is complete. What never completes a segment (around blocks found in
// the file already or copied from a local file, the file's unaligned end)
// is written through the page cache at the end of the fill. Blocks are
// reported to Landed only once all their bytes are written.

const (
	// directAlign is the alignment of direct I/O: the page size, a
	// multiple of every block device's logical block.
	directAlign = 4096
	// directSegment is the unit of direct writes.
	directSegment = 2 << 20
	// maxSegments bounds the segments held in memory; beyond it the
	// oldest is written through the page cache.
	maxSegments = 32
	// directMin is the smallest file filled with direct writes.
	directMin = 16 << 20
)

// alignedBuffer returns n bytes whose address is a multiple of
// directAlign.
func alignedBuffer(n int) []byte {
	b := make([]byte, n+directAlign)
	skip := 0
	if r := int(uintptr(unsafe.Pointer(&b[0])) & (directAlign - 1)); r != 0 {
		skip = directAlign - r
	}
	return b[skip : skip+n : skip+n]
}

// directWriter gathers written ranges into segments.
type directWriter struct {
	l       *Landed
	direct  *os.File // the temporary file opened with O_DIRECT
	maxSegs int      // maxSegments; tests lower it

	mu     sync.Mutex
	segs   map[int64]*segment // by start offset
	spare  [][]byte           // segment buffers to reuse
	failed bool               // a direct write failed: page cache from now on
}

// segment is one aligned window of the file being filled.
type segment struct {
	start  int64
	buf    []byte
	filled int64   // bytes written into buf so far
	pieces []piece // what of buf holds data
}

// piece is part of a block inside one segment.
type piece struct {
	off, n int64
	block  *landingBlock
}

// landing is a block being written: reported once no piece is left.
type landingBlock struct {
	off, n int64
	left   int
}

func newDirectWriter(l *Landed, direct *os.File) *directWriter {
	return &directWriter{l: l, direct: direct, maxSegs: maxSegments, segs: map[int64]*segment{}}
}

// full is how many bytes a segment starting at start holds when complete;
// 0 if it reaches beyond the file's end (that one is never written direct).
func (d *directWriter) full(start int64) int64 {
	if start+directSegment > d.l.size {
		return 0
	}
	return directSegment
}

// write copies a verified block at off into its segments and writes the
// segments it completes.
func (d *directWriter) write(off int64, data []byte) error {
	b := &landingBlock{off: off, n: int64(len(data))}
	var done []*segment
	d.mu.Lock()
	for pos := off; pos < off+b.n; {
		start := pos &^ (directSegment - 1)
		end := min(start+directSegment, off+b.n)
		s := d.segment(start)
		copy(s.buf[pos-start:], data[pos-off:end-off])
		s.pieces = append(s.pieces, piece{off: pos, n: end - pos, block: b})
		s.filled += end - pos
		b.left++
		if want := d.full(start); want > 0 && s.filled == want {
			delete(d.segs, start)
			done = append(done, s)
		}
		pos = end
	}
	if len(d.segs) > d.maxSegs {
		done = append(done, d.oldest())
	}
	d.mu.Unlock()
	for _, s := range done {
		if err := d.flush(s); err != nil {
			return err
		}
	}
	return nil
}

// segment returns the segment starting at start, new if need be. The
// caller holds d.mu.
func (d *directWriter) segment(start int64) *segment {
	s := d.segs[start]
	if s == nil {
		s = &segment{start: start}
		if n := len(d.spare); n > 0 {
			s.buf, d.spare = d.spare[n-1], d.spare[:n-1]
		} else {
			s.buf = alignedBuffer(directSegment)
		}
		d.segs[start] = s
	}
	return s
}

// oldest takes the segment with the lowest start out of the map. The
// caller holds d.mu.
func (d *directWriter) oldest() *segment {
	first := int64(-1)
	for start := range d.segs {
		if first < 0 || start < first {
			first = start
		}
	}
	s := d.segs[first]
	delete(d.segs, first)
	return s
}

// flush writes a segment, direct if it is complete, else its pieces
// through the page cache, and reports the blocks it completes.
func (d *directWriter) flush(s *segment) error {
	err := d.writeSegment(s)
	if err != nil {
		return err
	}
	d.mu.Lock()
	var landed []*landingBlock
	for _, p := range s.pieces {
		if p.block.left--; p.block.left == 0 {
			landed = append(landed, p.block)
		}
	}
	d.spare = append(d.spare, s.buf)
	d.mu.Unlock()
	for _, b := range landed {
		d.l.Range(b.off, b.n)
	}
	return nil
}

func (d *directWriter) writeSegment(s *segment) error {
	if want := d.full(s.start); want > 0 && s.filled == want && !d.isFailed() {
		if _, err := d.direct.WriteAt(s.buf[:want], s.start); err == nil {
			return nil
		}
		// Not possible here after all (alignment, file system): the page
		// cache for this segment and the rest.
		d.mu.Lock()
		d.failed = true
		d.mu.Unlock()
	}
	sort.Slice(s.pieces, func(i, j int) bool { return s.pieces[i].off < s.pieces[j].off })
	for i := 0; i < len(s.pieces); {
		// Adjacent pieces go in one write.
		lo, hi := s.pieces[i].off, s.pieces[i].off+s.pieces[i].n
		for i++; i < len(s.pieces) && s.pieces[i].off == hi; i++ {
			hi += s.pieces[i].n
		}
		if _, err := d.l.f.WriteAt(s.buf[lo-s.start:hi-s.start], lo); err != nil {
			return err
		}
	}
	return nil
}

func (d *directWriter) isFailed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.failed
}

// finish writes whatever segments are left.
func (d *directWriter) finish() error {
	d.mu.Lock()
	var left []*segment
	for _, s := range d.segs {
		left = append(left, s)
	}
	clear(d.segs)
	d.mu.Unlock()
	var first error
	for _, s := range left {
		if err := d.flush(s); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// readAt reads [off, off+len(p)) of the file around the page cache into
// p, through buf (aligned, at least len(p)+2*directAlign long).
func (d *directWriter) readAt(p, buf []byte, off int64) (int, error) {
	lo := off &^ (directAlign - 1)
	hi := (off + int64(len(p)) + directAlign - 1) &^ (directAlign - 1)
	n, err := d.direct.ReadAt(buf[:hi-lo], lo)
	avail := int64(n) - (off - lo)
	if avail <= 0 {
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return 0, err
	}
	return copy(p, buf[off-lo:off-lo+min(avail, int64(len(p)))]), nil
}
