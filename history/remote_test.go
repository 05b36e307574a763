package history_test

import (
	"errors"
	"testing"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/history"
	"github.com/realizefs/realize/internal/store"
	bolt "go.etcd.io/bbolt"
)

// relay copies every page of a log from one database to another, as the
// household protocol will, and returns the entries the receiver took in.
func relay(t *testing.T, from *store.DB, fromLog *history.Log, to *store.DB, toLog *history.Log, arena realize.ArenaName, author realize.PeerID, start uint64) ([]*realize.Entry, error) {
	t.Helper()
	var got []*realize.Entry
	for next := start; ; {
		var page *history.Page
		if err := from.View(func(tx *bolt.Tx) (err error) { page, err = fromLog.ReadPage(tx, arena, author, next); return err }); err != nil {
			return got, err
		}
		if page == nil {
			return got, nil
		}
		var fresh []*realize.Entry
		if err := to.Update(func(tx *bolt.Tx) (err error) { fresh, err = toLog.AppendRemote(tx, page, verifier); return err }); err != nil {
			return got, err
		}
		got = append(got, fresh...)
		head, _ := fromLog.DecodeHead(page.Head)
		next = head.Seq + 1
	}
}

func TestRelayedLogVerifiesAgainstItsAuthor(t *testing.T) {
	a, b, c := newSigner(11), newSigner(12), newSigner(13)
	dbA, dbB, dbC := openDB(t, a.ID()), openDB(t, b.ID()), openDB(t, c.ID())
	logA, logB, logC := history.New(a.ID(), a, nil), history.New(b.ID(), b, nil), history.New(c.ID(), c, nil)
	// One batch larger than a page, and a few small ones.
	err := dbA.Update(func(tx *bolt.Tx) error {
		var es []*realize.Entry
		for i := 0; i < history.MaxPageEntries+300; i++ {
			es = append(es, fileEntry("big/"+string(rune('a'+i%26))+string(rune('a'+i/26%26))+string(rune('a'+i/676)), byte(i)))
		}
		return logA.Append(tx, "docs", es)
	})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, dbA, logA, "docs", 3)
	total := history.MaxPageEntries + 303

	got, err := relay(t, dbA, logA, dbB, logB, "docs", a.ID(), 1)
	if err != nil || len(got) != total {
		t.Fatalf("A->B: %d entries, %v", len(got), err)
	}
	// B relays A's log to C; C checks it against A's key, not B's.
	got, err = relay(t, dbB, logB, dbC, logC, "docs", a.ID(), 1)
	if err != nil || len(got) != total || got[0].Origin != a.ID() {
		t.Fatalf("B->C: %d entries, %v", len(got), err)
	}
	// Delivering again adds nothing.
	if again, err := relay(t, dbB, logB, dbC, logC, "docs", a.ID(), 1); err != nil || len(again) != 0 {
		t.Fatalf("redelivery: %d entries, %v", len(again), err)
	}
	dbC.View(func(tx *bolt.Tx) error {
		if v := logC.Verify(tx, "docs", a.ID(), verifier); v.Err != nil || v.Entries != total {
			t.Errorf("C's copy of A's log: %+v", v)
		}
		return nil
	})
}

func TestTamperingRelayIsDetected(t *testing.T) {
	a, b := newSigner(21), newSigner(22)
	dbA, dbB := openDB(t, a.ID()), openDB(t, b.ID())
	logA, logB := history.New(a.ID(), a, nil), history.New(b.ID(), b, nil)
	appendN(t, dbA, logA, "docs", 4)
	var page *history.Page
	dbA.View(func(tx *bolt.Tx) (err error) { page, err = logA.ReadPage(tx, "docs", a.ID(), 1); return err })
	codec := history.NewCodec()
	cases := map[string]func(p *history.Page){
		"entry changed": func(p *history.Page) {
			e, _ := codec.Decode(p.Entries[1])
			e.Meta.Size++
			p.Entries[1], _ = codec.Encode(e)
		},
		"entry dropped":     func(p *history.Page) { p.Entries = append(p.Entries[:1], p.Entries[2:]...) },
		"head of other log": func(p *history.Page) { p.Arena = "other" },
		"own log":           func(p *history.Page) { p.Peer = b.ID() },
		"signature changed": func(p *history.Page) {
			h, _ := logA.DecodeHead(p.Head)
			h.Sig[0] ^= 1
			p.Head, _ = logA.EncodeHead(h)
		},
	}
	for name, tamper := range cases {
		t.Run(name, func(t *testing.T) {
			p := &history.Page{Arena: page.Arena, Peer: page.Peer, Head: append([]byte(nil), page.Head...)}
			for _, e := range page.Entries {
				p.Entries = append(p.Entries, append([]byte(nil), e...))
			}
			tamper(p)
			err := dbB.Update(func(tx *bolt.Tx) error { _, err := logB.AppendRemote(tx, p, verifier); return err })
			if err == nil {
				t.Fatal("tampered page accepted")
			}
		})
	}
}

func TestCatchUpAfterTrim(t *testing.T) {
	a, b := newSigner(31), newSigner(32)
	dbA, dbB := openDB(t, a.ID()), openDB(t, b.ID())
	logA, logB := history.New(a.ID(), a, nil), history.New(b.ID(), b, nil)
	appendN(t, dbA, logA, "docs", 6)
	dbA.Update(func(tx *bolt.Tx) error { _, err := logA.DropBefore(tx, "docs", a.ID(), 4); return err })
	if _, err := relay(t, dbA, logA, dbB, logB, "docs", a.ID(), 1); realize.KindOf(err) != realize.NotExist {
		t.Fatalf("reading trimmed entries: %v, want not-exist (catch up by snapshot)", err)
	}
	got, err := relay(t, dbA, logA, dbB, logB, "docs", a.ID(), 4)
	if err != nil || len(got) != 3 || got[0].Seq != 4 {
		t.Fatalf("catch-up: %d entries, %v", len(got), err)
	}
	appendN(t, dbA, logA, "docs", 2)
	if got, err := relay(t, dbA, logA, dbB, logB, "docs", a.ID(), 7); err != nil || len(got) != 2 {
		t.Fatalf("after catch-up: %d entries, %v", len(got), err)
	}
	dbB.View(func(tx *bolt.Tx) error {
		if v := logB.Verify(tx, "docs", a.ID(), verifier); v.Err != nil || v.First != 4 || v.Head != 8 {
			t.Errorf("verify = %+v", v)
		}
		return nil
	})
}

func TestChangedSignalsAfterCommit(t *testing.T) {
	a := newSigner(41)
	db := openDB(t, a.ID())
	l := history.New(a.ID(), a, nil)
	ch := l.Changed("docs")
	select {
	case <-ch:
		t.Fatal("signalled before any change")
	default:
	}
	other := l.Changed("other")
	appendN(t, db, l, "docs", 1)
	select {
	case <-ch:
	default:
		t.Fatal("not signalled after a commit")
	}
	select {
	case <-other:
		t.Fatal("another arena was signalled")
	default:
	}
	// A rolled back transaction signals nothing.
	ch = l.Changed("docs")
	db.Update(func(tx *bolt.Tx) error {
		l.Append(tx, "docs", []*realize.Entry{fileEntry("x", 1)})
		return errors.New("roll back")
	})
	select {
	case <-ch:
		t.Fatal("signalled on rollback")
	default:
	}
}
