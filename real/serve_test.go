package real_test

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/realizefs/realize"
	"github.com/zeebo/blake3"
)

// TestReadBlocksVerifiesEveryBlock: a long run is served in order, every
// block checked against the map (read ahead of the caller); a block that
// changes on disk after the file was opened ends the run with a Changed
// error before the caller sees any of its bytes.
func TestReadBlocksVerifiesEveryBlock(t *testing.T) {
	f := newFixture(t)
	content := make([]byte, 12<<20)
	rand.NewChaCha8([32]byte{5}).Read(content)
	f.write("big.bin", string(content))
	f.scan()
	blob := realize.Hash(blake3.Sum256(content))
	bm, err := f.arena.BlockMap(blob)
	if err != nil || len(bm) < 30 {
		t.Fatalf("block map: %d blocks, %v", len(bm), err)
	}
	var got bytes.Buffer
	err = f.arena.ReadBlocks(t.Context(), blob, 0, len(bm), func(i int, data []byte) error {
		got.Write(data)
		return nil
	})
	if err != nil || !bytes.Equal(got.Bytes(), content) {
		t.Fatalf("whole run: %d of %d bytes, %v", got.Len(), len(content), err)
	}

	// Block 25 is rewritten while block 0 is being handled: the reader
	// is a few blocks ahead at most, so it reads the new bytes.
	const bad = 25
	var off int64
	for _, b := range bm[:bad] {
		off += int64(b.Size)
	}
	var seen []int
	err = f.arena.ReadBlocks(t.Context(), blob, 0, len(bm), func(i int, data []byte) error {
		seen = append(seen, i)
		if i == 0 {
			w, err := os.OpenFile(filepath.Join(f.root, "big.bin"), os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer w.Close()
			_, err = w.WriteAt([]byte("changed"), off)
			return err
		}
		return nil
	})
	if realize.KindOf(err) != realize.Changed {
		t.Fatalf("after a change on disk: %v, want a Changed error", err)
	}
	if len(seen) != bad || seen[len(seen)-1] != bad-1 {
		t.Errorf("caller saw blocks %v, want 0..%d", seen, bad-1)
	}
}
