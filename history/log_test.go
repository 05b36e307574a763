package history_test

import (
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/history"
	"github.com/realizefs/realize/internal/store"
	bolt "go.etcd.io/bbolt"
)

type testSigner struct{ priv ed25519.PrivateKey }

func newSigner(seed byte) testSigner {
	s := make([]byte, ed25519.SeedSize)
	s[0] = seed
	return testSigner{ed25519.NewKeyFromSeed(s)}
}

func (s testSigner) ID() (p realize.PeerID) {
	copy(p[:], s.priv.Public().(ed25519.PublicKey))
	return p
}
func (s testSigner) Sign(m []byte) ([]byte, error) { return ed25519.Sign(s.priv, m), nil }

func verifier(p realize.PeerID, msg, sig []byte) bool { return ed25519.Verify(p[:], msg, sig) }

type fixedClock struct{ t time.Time }

func (c *fixedClock) Now() time.Time { c.t = c.t.Add(time.Second); return c.t }

func openDB(t *testing.T, peer realize.PeerID) *store.DB {
	t.Helper()
	db, err := store.Open(t.Context(), t.TempDir(), store.Options{Peer: peer})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func fileEntry(path string, blob byte) *realize.Entry {
	return &realize.Entry{Op: realize.OpAdd, Path: realize.Path(path),
		Meta: realize.Meta{Kind: realize.KindFile, Size: 3, MTime: 7, Blob: realize.Hash{blob}}}
}

func appendN(t *testing.T, db *store.DB, l *history.Log, arena realize.ArenaName, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		err := db.Update(func(tx *bolt.Tx) error {
			return l.Append(tx, arena, []*realize.Entry{fileEntry("d/f"+string(rune('a'+i)), byte(i))})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestAppendScanVerify(t *testing.T) {
	s := newSigner(1)
	db := openDB(t, s.ID())
	l := history.New(s.ID(), s, &fixedClock{t: time.Unix(1000, 0)})
	appendN(t, db, l, "docs", 5)
	err := db.View(func(tx *bolt.Tx) error {
		head, err := l.Head(tx, "docs", s.ID())
		if err != nil {
			return err
		}
		if head.Seq != 5 {
			t.Errorf("head seq = %d, want 5", head.Seq)
		}
		var seqs []uint64
		var prev realize.Hash
		err = l.Scan(tx, "docs", s.ID(), 2, func(e *realize.Entry, h realize.Hash) error {
			seqs = append(seqs, e.Seq)
			if e.Version[s.ID()] != e.Seq {
				t.Errorf("entry %d: own version component %d, want the sequence number", e.Seq, e.Version[s.ID()])
			}
			if e.Origin != s.ID() || e.Peer != s.ID() || e.Arena != "docs" {
				t.Errorf("entry %d: wrong identity fields %+v", e.Seq, e)
			}
			if e.Seq > 2 && e.Prev != prev {
				t.Errorf("entry %d does not chain", e.Seq)
			}
			prev = h
			return nil
		})
		if len(seqs) != 4 || seqs[0] != 2 || seqs[3] != 5 {
			t.Errorf("scan from 2 = %v", seqs)
		}
		v := l.Verify(tx, "docs", s.ID(), verifier)
		if v.Err != nil || v.Entries != 5 || v.Head != 5 || v.First != 1 {
			t.Errorf("verify = %+v", v)
		}
		ids, _ := l.Logs(tx)
		if len(ids) != 1 || ids[0].Arena != "docs" || ids[0].Peer != s.ID() {
			t.Errorf("logs = %v", ids)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestVerifyDetectsTampering changes stored bytes in each way an attacker
// or a broken disk could, and checks verification notices every one.
func TestVerifyDetectsTampering(t *testing.T) {
	s := newSigner(2)
	tests := []struct {
		name   string
		tamper func(b *bolt.Bucket) error
		verify history.Verifier
	}{
		{"intact", func(*bolt.Bucket) error { return nil }, verifier},
		{"entry rewritten", func(b *bolt.Bucket) error {
			return rewrite(b, 3, func(e *realize.Entry) { e.Meta.Size = 99 })
		}, verifier},
		{"entry removed", func(b *bolt.Bucket) error { return b.Bucket([]byte("e")).Delete(store.SeqKey(3)) }, verifier},
		{"last entry removed", func(b *bolt.Bucket) error { return b.Bucket([]byte("e")).Delete(store.SeqKey(5)) }, verifier},
		{"entry appended unsigned", func(b *bolt.Bucket) error {
			return copyEntry(b, 5, 6, func(e *realize.Entry, prev realize.Hash) { e.Seq, e.Prev = 6, prev })
		}, verifier},
		{"wrong key", func(*bolt.Bucket) error { return nil }, func(p realize.PeerID, m, sig []byte) bool {
			o := newSigner(3)
			return ed25519.Verify(o.ID().Bytes(), m, sig)
		}},
		{"garbage entry", func(b *bolt.Bucket) error { return b.Bucket([]byte("e")).Put(store.SeqKey(2), []byte{0xff, 0x00}) }, verifier},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := openDB(t, s.ID())
			l := history.New(s.ID(), s, nil)
			appendN(t, db, l, "docs", 5)
			err := db.Update(func(tx *bolt.Tx) error {
				return tc.tamper(tx.Bucket([]byte("history")).Bucket([]byte("docs")).Bucket(s.ID().Bytes()))
			})
			if err != nil {
				t.Fatal(err)
			}
			var v history.Verification
			db.View(func(tx *bolt.Tx) error { v = l.Verify(tx, "docs", s.ID(), tc.verify); return nil })
			if want := tc.name == "intact"; (v.Err == nil) != want {
				t.Fatalf("verify err = %v, want ok=%v", v.Err, want)
			}
			if v.Err != nil && realize.KindOf(v.Err) != realize.Corrupt {
				t.Errorf("kind = %v, want corrupt", realize.KindOf(v.Err))
			}
		})
	}
}

func rewrite(b *bolt.Bucket, seq uint64, f func(*realize.Entry)) error {
	c := history.NewCodec()
	e, err := c.Decode(b.Bucket([]byte("e")).Get(store.SeqKey(seq)))
	if err != nil {
		return err
	}
	f(e)
	enc, err := c.Encode(e)
	if err != nil {
		return err
	}
	return b.Bucket([]byte("e")).Put(store.SeqKey(seq), enc)
}

func copyEntry(b *bolt.Bucket, from, to uint64, f func(*realize.Entry, realize.Hash)) error {
	c := history.NewCodec()
	raw := b.Bucket([]byte("e")).Get(store.SeqKey(from))
	e, err := c.Decode(raw)
	if err != nil {
		return err
	}
	f(e, history.HashOf(raw))
	enc, err := c.Encode(e)
	if err != nil {
		return err
	}
	return b.Bucket([]byte("e")).Put(store.SeqKey(to), enc)
}

func TestDropBeforeKeepsChainVerifiable(t *testing.T) {
	s := newSigner(4)
	db := openDB(t, s.ID())
	l := history.New(s.ID(), s, nil)
	appendN(t, db, l, "docs", 6)
	var n int
	if err := db.Update(func(tx *bolt.Tx) (err error) { n, err = l.DropBefore(tx, "docs", s.ID(), 4); return err }); err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("dropped %d, want 3", n)
	}
	appendN(t, db, l, "docs", 1)
	db.View(func(tx *bolt.Tx) error {
		v := l.Verify(tx, "docs", s.ID(), verifier)
		if v.Err != nil || v.First != 4 || v.Entries != 4 || v.Head != 7 {
			t.Errorf("verify after drop = %+v", v)
		}
		return nil
	})
}

func TestAppendReadOnlyRefused(t *testing.T) {
	s := newSigner(5)
	db := openDB(t, s.ID())
	l := history.New(s.ID(), nil, nil)
	err := db.Update(func(tx *bolt.Tx) error { return l.Append(tx, "docs", []*realize.Entry{fileEntry("a", 1)}) })
	if realize.KindOf(err) != realize.Unsupported {
		t.Fatalf("err = %v", err)
	}
	var re *realize.Error
	if !errors.As(err, &re) {
		t.Fatal("not a realize error")
	}
}
