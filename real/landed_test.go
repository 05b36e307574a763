package real

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/realizefs/realize"
)

// fillLanded plays a Fill over content: it writes the blocks of bm in the
// given order, reporting each as landed when report is set, and returns
// what hashing while filling computed.
func fillLanded(t *testing.T, content []byte, bm realize.BlockMap, order []int, report bool) (Hashed, error) {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(int64(len(content))); err != nil {
		t.Fatal(err)
	}
	offsets := make([]int64, len(bm)+1)
	for i, b := range bm {
		offsets[i+1] = offsets[i] + int64(b.Size)
	}
	l := newLanded(f, int64(len(content)))
	hashed := l.follow(t.Context(), NewHasher())
	if report {
		l.Blocks(bm)
	}
	for _, i := range order {
		if _, err := f.WriteAt(content[offsets[i]:offsets[i+1]], offsets[i]); err != nil {
			t.Fatal(err)
		}
		if report {
			l.Range(offsets[i], offsets[i+1]-offsets[i])
		}
	}
	l.finish(nil)
	return hashed()
}

// TestLandedHashIsHashFiles: hashing a file as its blocks land, in any
// order, reported or not, gives exactly what hashing the finished file
// gives (blob hash and block map).
func TestLandedHashIsHashFiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	content := make([]byte, 9<<20+12345)
	for i := range content {
		content[i] = byte(rng.Uint32())
	}
	want, err := NewHasher().HashReader(t.Context(), bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	order := rng.Perm(len(want.Blocks))
	for _, report := range []bool{true, false} {
		got, err := fillLanded(t, content, want.Blocks, order, report)
		if err != nil {
			t.Fatal(err)
		}
		if got.Blob != want.Blob || got.Size != want.Size || !sameBlocks(got.Blocks, want.Blocks) {
			t.Fatalf("report=%v: got %s %d (%d blocks), want %s %d (%d blocks)", report,
				got.Blob.Short(), got.Size, len(got.Blocks), want.Blob.Short(), want.Size, len(want.Blocks))
		}
	}
}

// TestLandedTrustsOnlyMatchingBlocks: a block map whose cuts differ from
// the chunker's (a peer's non-canonical map) does not lend its hashes to
// the blocks the chunker cuts: those are hashed, so the result is still
// the canonical map.
func TestLandedTrustsOnlyMatchingBlocks(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	content := make([]byte, 3<<20)
	for i := range content {
		content[i] = byte(rng.Uint32())
	}
	want, err := NewHasher().HashReader(t.Context(), bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	// Fixed 512 KiB cuts with made-up hashes: the filler "verified" them.
	var odd realize.BlockMap
	for off := 0; off < len(content); off += 512 << 10 {
		odd = append(odd, realize.Block{Hash: realize.Hash{byte(off >> 19)}, Size: uint32(min(512<<10, len(content)-off))})
	}
	order := make([]int, len(odd))
	for i := range order {
		order[i] = i
	}
	got, err := fillLanded(t, content, odd, order, true)
	if err != nil {
		t.Fatal(err)
	}
	if got.Blob != want.Blob || !sameBlocks(got.Blocks, want.Blocks) {
		t.Fatalf("got %s with %d blocks, want %s with %d", got.Blob.Short(), len(got.Blocks), want.Blob.Short(), len(want.Blocks))
	}
}

func sameBlocks(a, b realize.BlockMap) bool {
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

// TestLandedWriteDirect: a large file whose blocks arrive through Write
// in any order, some blocks written beside it (found in the file already,
// copied from a local file), lands byte for byte, hashes to what hashing
// the finished file gives, and every block that came through Write is
// reported as verified; also when few segments may be held at once.
func TestLandedWriteDirect(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	content := make([]byte, directMin+5<<20+777)
	for i := range content {
		content[i] = byte(rng.Uint32())
	}
	want, err := NewHasher().HashReader(t.Context(), bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	bm := want.Blocks
	offsets := make([]int64, len(bm)+1)
	for i, b := range bm {
		offsets[i+1] = offsets[i] + int64(b.Size)
	}
	for _, maxSegs := range []int{maxSegments, 2} {
		name := filepath.Join(t.TempDir(), "tmp")
		f, err := os.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(int64(len(content))); err != nil {
			t.Fatal(err)
		}
		l := newLanded(f, int64(len(content)))
		if d := l.directWriter(); d == nil {
			t.Log("no direct I/O on this file system: the page cache is used")
		} else {
			d.maxSegs = maxSegs
		}
		hashed := l.follow(t.Context(), NewHasher())
		l.Blocks(bm)
		viaWrite := 0
		for _, i := range rng.Perm(len(bm)) {
			data := content[offsets[i]:offsets[i+1]]
			if i%7 == 3 {
				if _, err := f.WriteAt(data, offsets[i]); err != nil {
					t.Fatal(err)
				}
				l.Range(offsets[i], int64(len(data)))
				continue
			}
			if err := l.Write(offsets[i], data); err != nil {
				t.Fatal(err)
			}
			viaWrite++
		}
		if err := l.flush(); err != nil {
			t.Fatal(err)
		}
		l.finish(nil)
		got, err := hashed()
		if err != nil {
			t.Fatal(err)
		}
		if got.Blob != want.Blob || !sameBlocks(got.Blocks, want.Blocks) {
			t.Fatalf("segments %d: hashed %s (%d blocks), want %s (%d blocks)", maxSegs, got.Blob.Short(), len(got.Blocks), want.Blob.Short(), len(want.Blocks))
		}
		on, err := os.ReadFile(name)
		if err != nil || !bytes.Equal(on, content) {
			t.Fatalf("segments %d: the file holds other bytes (%v)", maxSegs, err)
		}
		if len(l.ok) != len(bm) {
			t.Errorf("segments %d: %d blocks reported verified, want %d (%d through Write)", maxSegs, len(l.ok), len(bm), viaWrite)
		}
		l.close()
		f.Close()
	}
}
