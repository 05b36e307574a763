package real_test

import (
	"fmt"
	"testing"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/internal/store"
	"github.com/realizefs/realize/real"
	bolt "go.etcd.io/bbolt"
)

// BenchmarkChildren lists every directory of an index of 100 directories
// of 1000 files: what a rescan that finds nothing does per directory.
func BenchmarkChildren(b *testing.B) {
	db, err := store.Open(b.Context(), b.TempDir(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	const dirs, files = 100, 1000
	peer := realize.PeerID{7}
	err = db.Update(func(tx *bolt.Tx) error {
		ix, err := real.OpenIndex(tx, "a")
		if err != nil {
			return err
		}
		for d := range dirs {
			dir := realize.Path(fmt.Sprintf("d%03d", d))
			if err := ix.Put(dir, &real.Record{Meta: realize.Meta{Kind: realize.KindDir}, Version: realize.VersionVector{peer: 1}, Origin: peer}); err != nil {
				return err
			}
			for f := range files {
				m := realize.Meta{Kind: realize.KindFile, Size: int64(f), MTime: 1e18, Blob: realize.Hash{byte(d), byte(f), byte(f >> 8)}}
				r := &real.Record{Meta: m, Stat: real.Stat{Size: int64(f), MTime: 1e18, CTime: 1e18, Inode: uint64(d*files + f), Mode: 0o644},
					Version: realize.VersionVector{peer: uint64(d*files + f)}, Origin: peer}
				if err := ix.PutBlob(m.Blob, m.Size, realize.BlockMap{{Hash: m.Blob, Size: uint32(m.Size)}}); err != nil {
					return err
				}
				if err := ix.Put(dir.Join(fmt.Sprintf("f%04d", f)), r); err != nil {
					return err
				}
			}
		}
		return ix.Flush()
	})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		err := db.View(func(tx *bolt.Tx) error {
			ix, err := real.OpenIndex(tx, "a")
			if err != nil {
				return err
			}
			for d := range dirs {
				kids, err := ix.Children(realize.Path(fmt.Sprintf("d%03d", d)))
				if err != nil || len(kids) != files {
					return fmt.Errorf("%d children, %v", len(kids), err)
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
