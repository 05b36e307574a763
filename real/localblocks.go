package real

import (
	"context"
	"io"
	"os"

	"github.com/realizefs/realize"
	"github.com/zeebo/blake3"
	bolt "go.etcd.io/bbolt"
)

// CopyLocalBlocks writes into dst those of the wanted blocks (indexes into
// blocks, at offsets) that this peer already holds in a file of this arena
// — typically the previous version of the very file being updated, so a
// small edit of a large file costs only the blocks around the edit. Every
// block is verified against its hash before it is written. It returns the
// blocks still missing and the bytes copied.
func (a *Arena) CopyLocalBlocks(ctx context.Context, blocks realize.BlockMap, offsets []int64, want []int, dst *os.File) ([]int, int64, error) {
	where := make(map[int][]BlockLocation, len(want))
	err := a.db.View(func(tx *bolt.Tx) error {
		ix, err := OpenIndex(tx, a.name)
		if err != nil {
			return err
		}
		for _, i := range want {
			if locs := ix.WhereIsBlock(blocks[i].Hash); len(locs) > 0 {
				where[i] = locs
			}
		}
		return nil
	})
	if err != nil || len(where) == 0 {
		return want, 0, err
	}
	files := map[realize.Hash]*os.File{}
	defer func() {
		for _, f := range files {
			if f != nil {
				f.Close()
			}
		}
	}()
	open := func(blob realize.Hash) *os.File {
		f, seen := files[blob]
		if !seen {
			f, _ = a.OpenBlob(blob) // nil when not held in this arena
			files[blob] = f
		}
		return f
	}
	buf := make([]byte, BlockMax)
	var missing []int
	var copied int64
	for _, i := range want {
		if err := ctx.Err(); err != nil {
			return nil, copied, err
		}
		if blocks[i].Size > BlockMax {
			missing = append(missing, i)
			continue
		}
		b := buf[:blocks[i].Size]
		if !readVerified(b, blocks[i].Hash, where[i], open) {
			missing = append(missing, i)
			continue
		}
		if _, err := dst.WriteAt(b, offsets[i]); err != nil {
			return nil, copied, &realize.Error{Op: "copy local blocks", Kind: realize.IO, Arena: a.name, Err: err}
		}
		copied += int64(len(b))
	}
	return missing, copied, nil
}

// readVerified reads a block from the first location that has it intact.
func readVerified(b []byte, hash realize.Hash, locs []BlockLocation, open func(realize.Hash) *os.File) bool {
	for _, l := range locs {
		f := open(l.Blob)
		if f == nil {
			continue
		}
		if n, err := f.ReadAt(b, l.Offset); (err == nil || err == io.EOF) && n == len(b) && realize.Hash(blake3.Sum256(b)) == hash {
			return true
		}
	}
	return false
}
