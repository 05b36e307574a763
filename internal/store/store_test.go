package store_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/internal/store"
	bolt "go.etcd.io/bbolt"
)

var peerA, peerB = realize.PeerID{0xa}, realize.PeerID{0xb}

func TestOpen(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, dir string)
		opt     store.Options
		want    realize.ErrKind // Other = success
	}{
		{"new", func(*testing.T, string) {}, store.Options{Peer: peerA}, realize.Other},
		{"reopen", func(t *testing.T, dir string) { mustOpen(t, dir, peerA).Close() }, store.Options{Peer: peerA}, realize.Other},
		{"other peer's db", func(t *testing.T, dir string) { mustOpen(t, dir, peerA).Close() }, store.Options{Peer: peerB}, realize.Corrupt},
		{"garbage file", func(t *testing.T, dir string) {
			write(t, dir, []byte("this is not a database, just some text........"))
		}, store.Options{Peer: peerA}, realize.Corrupt},
		{"zero-filled file", func(t *testing.T, dir string) { write(t, dir, make([]byte, 64<<10)) }, store.Options{Peer: peerA}, realize.Corrupt},
		{"foreign bbolt db", func(t *testing.T, dir string) {
			db, err := bolt.Open(filepath.Join(dir, store.FileName), 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("widgets")); return err })
			db.Close()
		}, store.Options{Peer: peerA}, realize.Corrupt},
		{"newer schema", func(t *testing.T, dir string) {
			db := mustOpen(t, dir, peerA)
			db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("meta")).Put([]byte("schema"), store.SeqKey(99)) })
			db.Close()
		}, store.Options{Peer: peerA}, realize.Unsupported},
		{"read-only missing", func(*testing.T, string) {}, store.Options{ReadOnly: true}, realize.NotExist},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.prepare(t, dir)
			db, err := store.Open(t.Context(), dir, tc.opt)
			if db != nil {
				defer db.Close()
			}
			if got := realize.KindOf(err); (err == nil) != (tc.want == realize.Other) || err != nil && got != tc.want {
				t.Fatalf("err = %v (kind %v), want kind %v", err, got, tc.want)
			}
		})
	}
}

func TestSecondOpenIsBusy(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir, peerA)
	defer db.Close()
	_, err := store.Open(t.Context(), dir, store.Options{Peer: peerA})
	if realize.KindOf(err) != realize.Busy {
		t.Fatalf("second open: %v, want busy", err)
	}
	_, err = store.Open(t.Context(), dir, store.Options{ReadOnly: true})
	if realize.KindOf(err) != realize.Busy {
		t.Fatalf("read-only open while locked: %v, want busy", err)
	}
}

func TestCorruptPageDetected(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir, peerA)
	// Fill a few pages so there is something beyond the meta pages to damage.
	db.Update(func(tx *bolt.Tx) error {
		b, _ := tx.CreateBucket([]byte("index"))
		for i := 0; i < 2000; i++ {
			b.Put(store.SeqKey(uint64(i)), make([]byte, 100))
		}
		return nil
	})
	db.Close()
	path := filepath.Join(dir, store.FileName)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Scribble over every page after the two meta pages and the first
	// freelist/root pages; the structural check must refuse the file.
	ps := os.Getpagesize()
	for off := 4 * ps; off+16 < len(raw); off += ps {
		copy(raw[off:], []byte{0xde, 0xad, 0xbe, 0xef, 0xde, 0xad, 0xbe, 0xef, 0x55, 0x55})
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	db2, err := store.Open(t.Context(), dir, store.Options{Peer: peerA})
	if err == nil {
		db2.Close()
		t.Fatal("damaged database opened without error")
	}
	if k := realize.KindOf(err); k != realize.Corrupt {
		t.Fatalf("err = %v, want corrupt", err)
	}
}

func mustOpen(t *testing.T, dir string, p realize.PeerID) *store.DB {
	t.Helper()
	db, err := store.Open(t.Context(), dir, store.Options{Peer: p})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func write(t *testing.T, dir string, b []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, store.FileName), b, 0o600); err != nil {
		t.Fatal(err)
	}
}
