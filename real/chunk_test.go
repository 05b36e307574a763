package real

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/zeebo/blake3"

	"github.com/realizefs/realize"
)

// randomBytes returns n pseudo-random bytes, the same for the same seed.
func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	var s [32]byte
	s[0] = byte(seed)
	s[1] = byte(seed >> 8)
	_, _ = rand.NewChaCha8(s).Read(b)
	return b
}

func hashBytes(t testing.TB, b []byte) Hashed {
	t.Helper()
	hs, err := NewHasher().HashReader(context.Background(), bytes.NewReader(b))
	if err != nil {
		t.Fatalf("HashReader(%d bytes): %v", len(b), err)
	}
	return hs
}

// checkBlocks verifies the invariants every block map must hold.
func checkBlocks(t *testing.T, data []byte, hs Hashed) {
	t.Helper()
	if hs.Size != int64(len(data)) {
		t.Errorf("Size = %d, want %d", hs.Size, len(data))
	}
	if want := realize.Hash(blake3.Sum256(data)); hs.Blob != want {
		t.Errorf("Blob = %v, want %v", hs.Blob, want)
	}
	off := 0
	for i, b := range hs.Blocks {
		last := i == len(hs.Blocks)-1
		if b.Size > BlockMax || b.Size == 0 || !last && b.Size < BlockMin {
			t.Errorf("block %d of %d: size %d outside [%d, %d]", i, len(hs.Blocks), b.Size, BlockMin, BlockMax)
		}
		if off+int(b.Size) > len(data) {
			t.Fatalf("blocks run past the end: block %d at %d size %d, data %d", i, off, b.Size, len(data))
		}
		if want := realize.Hash(blake3.Sum256(data[off : off+int(b.Size)])); b.Hash != want {
			t.Errorf("block %d hash = %v, want %v", i, b.Hash, want)
		}
		off += int(b.Size)
	}
	if off != len(data) {
		t.Errorf("block sizes sum to %d, want %d", off, len(data))
	}
}

func TestHashReaderBlocks(t *testing.T) {
	cases := []struct {
		name       string
		size       int
		wantBlocks int // -1: more than one, exact count not fixed
	}{
		{"empty", 0, 0},
		{"one byte", 1, 1},
		{"1023", 1023, 1},
		{"min block", BlockMin, 1},
		{"min block+1", BlockMin + 1, 1},
		{"max block", BlockMax, 1},
		{"max block+1", BlockMax + 1, -1},
		{"3MiB", 3 << 20, -1},
		{"pipelined", pipelineMin + segmentSize + 17, -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := randomBytes(uint64(tc.size), tc.size)
			hs := hashBytes(t, data)
			checkBlocks(t, data, hs)
			// With the size known up front, large content takes the
			// pipelined path; the result must not differ.
			w, err := newHashWorker()
			if err != nil {
				t.Fatal(err)
			}
			sized, err := w.hash(t.Context(), bytes.NewReader(data), int64(tc.size), tc.size >= pipelineMin)
			if err != nil {
				t.Fatal(err)
			}
			if sized.Blob != hs.Blob || sized.Size != hs.Size || !equalBlocks(sized.Blocks, hs.Blocks) {
				t.Errorf("hashing with a size hint gave a different result")
			}
			switch {
			case tc.wantBlocks >= 0 && len(hs.Blocks) != tc.wantBlocks:
				t.Errorf("%d blocks, want %d", len(hs.Blocks), tc.wantBlocks)
			case tc.wantBlocks == 1 && hs.Blocks[0].Hash != hs.Blob:
				t.Errorf("single block hash %v differs from blob hash %v", hs.Blocks[0].Hash, hs.Blob)
			case tc.wantBlocks < 0 && tc.size > BlockMax && len(hs.Blocks) < 2:
				t.Errorf("%d bytes in %d block(s)", tc.size, len(hs.Blocks))
			}
		})
	}
}

// TestOneBlockMatchesChunker pins the shortcut for small content to what the
// chunker itself would produce, so peers that take either path agree.
func TestOneBlockMatchesChunker(t *testing.T) {
	for _, n := range []int{1, 4096, BlockMin - 1, BlockMin} {
		data := randomBytes(7, n)
		w, err := newHashWorker()
		if err != nil {
			t.Fatal(err)
		}
		w.chunker.Reset(bytes.NewReader(data))
		viaChunker, err := w.chunks(int64(n), false)
		if err != nil {
			t.Fatal(err)
		}
		short := oneBlock(data)
		if viaChunker.Blob != short.Blob || len(viaChunker.Blocks) != 1 || viaChunker.Blocks[0] != short.Blocks[0] {
			t.Errorf("size %d: chunker gave %+v, shortcut %+v", n, viaChunker, short)
		}
	}
}

func TestHashDeterministic(t *testing.T) {
	data := randomBytes(1, 5<<20+123)
	h := NewHasher()
	var first Hashed
	for i := range 3 {
		// Odd read sizes must not move block boundaries.
		hs, err := h.HashReader(t.Context(), &chopReader{data: data, step: 1 + i*77777})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = hs
			continue
		}
		if hs.Blob != first.Blob || !equalBlocks(hs.Blocks, first.Blocks) {
			t.Fatalf("run %d differs from run 0", i)
		}
	}
}

// TestFixedBoundaries guards against a library change moving boundaries:
// peers compare block hashes, so the cut points of given bytes must never
// change. The expected sizes were produced by ChunkAlgorithm at the pinned
// library version.
func TestFixedBoundaries(t *testing.T) {
	hs := hashBytes(t, randomBytes(42, 4<<20))
	var got []uint32
	for _, b := range hs.Blocks {
		got = append(got, b.Size)
	}
	want := fixedBoundaries
	if len(got) != len(want) {
		t.Fatalf("block sizes %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("block sizes %v, want %v", got, want)
		}
	}
}

func TestEditChangesFewBlocks(t *testing.T) {
	const size = 20 << 20
	orig := randomBytes(3, size)
	before := hashBytes(t, orig)
	mid := size / 2
	cases := []struct {
		name string
		edit func([]byte) []byte
	}{
		{"overwrite", func(b []byte) []byte {
			copy(b[mid:], "an edit in the middle of the file")
			return b
		}},
		{"insert", func(b []byte) []byte {
			return append(b[:mid:mid], append([]byte("inserted bytes shift everything after"), b[mid:]...)...)
		}},
		{"delete", func(b []byte) []byte {
			return append(b[:mid:mid], b[mid+1000:]...)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			edited := tc.edit(bytes.Clone(orig))
			after := hashBytes(t, edited)
			checkBlocks(t, edited, after)
			old := map[realize.Hash]bool{}
			for _, b := range before.Blocks {
				old[b.Hash] = true
			}
			changed := 0
			for _, b := range after.Blocks {
				if !old[b.Hash] {
					changed++
				}
			}
			if changed == 0 || changed > 4 {
				t.Errorf("%d of %d blocks changed, want 1..4", changed, len(after.Blocks))
			}
		})
	}
}

func TestHashReaderErrors(t *testing.T) {
	boom := errors.New("disk on fire")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	cases := []struct {
		name string
		ctx  context.Context
		r    io.Reader
		kind realize.ErrKind
	}{
		{"read error early", t.Context(), io.MultiReader(bytes.NewReader(make([]byte, 10)), &errReader{boom}), realize.IO},
		{"read error late", t.Context(), io.MultiReader(bytes.NewReader(make([]byte, 3<<20)), &errReader{boom}), realize.IO},
		{"canceled", ctx, bytes.NewReader(make([]byte, 10)), realize.Canceled},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewHasher().HashReader(tc.ctx, tc.r)
			if got := realize.KindOf(err); got != tc.kind {
				t.Fatalf("err = %v (kind %v), want kind %v", err, got, tc.kind)
			}
		})
	}
}

func TestHasherConcurrent(t *testing.T) {
	h := NewHasher()
	data := randomBytes(9, 9<<20)
	want := hashBytes(t, data)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			hs, err := h.HashReader(t.Context(), bytes.NewReader(data))
			if err == nil && (hs.Blob != want.Blob || !equalBlocks(hs.Blocks, want.Blocks)) {
				err = errors.New("concurrent hash differs")
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func equalBlocks(a, b realize.BlockMap) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// chopReader yields data in pieces of step bytes.
type chopReader struct {
	data []byte
	step int
}

func (c *chopReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.step)], c.data)
	c.data = c.data[n:]
	return n, nil
}

type errReader struct{ err error }

func (e *errReader) Read([]byte) (int, error) { return 0, e.err }

var fixedBoundaries = []uint32{
	66121, 329380, 66486, 65620, 66007, 65799, 329079, 200150, 66449, 66734, 460411,
	66342, 724541, 198096, 201415, 65992, 329482, 459827, 197451, 67208, 101714,
}
