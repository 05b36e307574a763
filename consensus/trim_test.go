package consensus

import (
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/history"
	"github.com/realizefs/realize/internal/store"
	"github.com/realizefs/realize/real"
	bolt "go.etcd.io/bbolt"
)

type testSigner struct{ priv ed25519.PrivateKey }

func newTestSigner(seed byte) testSigner {
	s := make([]byte, ed25519.SeedSize)
	s[0], s[1] = seed, 0x77
	return testSigner{ed25519.NewKeyFromSeed(s)}
}

func (s testSigner) ID() (p realize.PeerID) {
	copy(p[:], s.priv.Public().(ed25519.PublicKey))
	return p
}
func (s testSigner) Sign(m []byte) ([]byte, error) { return ed25519.Sign(s.priv, m), nil }

func verify(p realize.PeerID, msg, sig []byte) bool { return ed25519.Verify(p[:], msg, sig) }

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testPeer is a database, a log and an arena over a temporary directory.
type testPeer struct {
	id    realize.PeerID
	db    *store.DB
	log   *history.Log
	arena *real.Arena
}

func newTestPeer(t *testing.T, seed byte, clock realize.Clock) *testPeer {
	t.Helper()
	s := newTestSigner(seed)
	dir := t.TempDir()
	root := filepath.Join(dir, "real")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(t.Context(), dir, store.Options{Peer: s.ID()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	p := &testPeer{id: s.ID(), db: db, log: history.New(s.ID(), s, clock)}
	p.arena, err = real.NewArena(real.ArenaOptions{Name: "docs", Root: root, DB: db, Log: p.log, Self: p.id, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// appendEntries records n local file additions in p's own log.
func (p *testPeer) appendEntries(t *testing.T, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		e := &realize.Entry{Op: realize.OpAdd, Path: realize.Path(fmt.Sprintf("f%d", i)),
			Meta: realize.Meta{Kind: realize.KindFile, Size: 1, Blob: realize.Hash{byte(i)}}}
		if err := p.db.Update(func(tx *bolt.Tx) error { return p.log.Append(tx, "docs", []*realize.Entry{e}) }); err != nil {
			t.Fatal(err)
		}
	}
}

// copyLog stores every entry of from's own log in to.
func copyLog(t *testing.T, from, to *testPeer) {
	t.Helper()
	for next := uint64(1); ; {
		var page *history.Page
		from.db.View(func(tx *bolt.Tx) (err error) { page, err = from.log.ReadPage(tx, "docs", from.id, next); return err })
		if page == nil {
			return
		}
		if err := to.db.Update(func(tx *bolt.Tx) error { _, err := to.log.AppendRemote(tx, page, verify); return err }); err != nil {
			t.Fatal(err)
		}
		h, _ := from.log.DecodeHead(page.Head)
		next = h.Seq + 1
	}
}

// TestTrimmerFloors: how far a log is trimmed, by the acks and activity
// of the other peers, this peer's applied cursor and the audit retention.
func TestTrimmerFloors(t *testing.T) {
	p1, p2 := realize.PeerID{0xa1}, realize.PeerID{0xa2}
	type ack struct {
		peer realize.PeerID
		seq  uint64
		seen time.Duration // ago; 0 = never heard from
	}
	tests := []struct {
		name      string
		peers     []realize.PeerID
		acks      []ack
		auditKeep time.Duration
		wantFirst uint64 // first entry of own log (head 10) kept
	}{
		{"alone: only the head stays", nil, nil, 0, 10},
		{"slowest active peer", []realize.PeerID{p1, p2}, []ack{{p1, 6, time.Hour}, {p2, 3, time.Hour}}, 0, 4},
		{"inactive peer does not hold back", []realize.PeerID{p1, p2}, []ack{{p1, 6, time.Hour}, {p2, 3, 40 * 24 * time.Hour}}, 0, 7},
		{"all inactive: what one has", []realize.PeerID{p1, p2}, []ack{{p1, 6, 40 * 24 * time.Hour}, {p2, 3, 40 * 24 * time.Hour}}, 0, 7},
		{"all inactive, none has any", []realize.PeerID{p1, p2}, []ack{{p1, 0, 40 * 24 * time.Hour}, {p2, 0, 40 * 24 * time.Hour}}, 0, 1},
		{"never heard from: active from now", []realize.PeerID{p1, p2}, []ack{{p1, 6, time.Hour}}, 0, 1},
		{"audit retention keeps them", []realize.PeerID{p1}, []ack{{p1, 10, time.Hour}}, 24 * time.Hour, 1},
		{"past audit retention", []realize.PeerID{p1}, []ack{{p1, 10, time.Hour}}, time.Minute, 10},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := &testClock{t: time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)}
			me := newTestPeer(t, byte(i+1), clock)
			me.appendEntries(t, 10)
			clock.advance(time.Hour)
			now := clock.Now()
			err := me.db.Update(func(tx *bolt.Tx) error {
				for _, a := range tc.acks {
					if err := me.log.SetAck(tx, "docs", a.peer, me.id, a.seq); err != nil {
						return err
					}
					if a.seen > 0 {
						if err := me.log.SetSeen(tx, a.peer, now.Add(-a.seen)); err != nil {
							return err
						}
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			tr := &Trimmer{DB: me.db, Log: me.log, Self: me.id, Arena: me.arena, Clock: clock,
				InactiveAfter: 30 * 24 * time.Hour, AuditKeep: tc.auditKeep, Peers: func() []realize.PeerID { return tc.peers }}
			if _, err := tr.Trim(t.Context()); err != nil {
				t.Fatal(err)
			}
			me.db.View(func(tx *bolt.Tx) error {
				first, head, _ := me.log.Retained(tx, "docs", me.id)
				if first != tc.wantFirst || head != 10 {
					t.Errorf("own log keeps %d-%d, want %d-10", first, head, tc.wantFirst)
				}
				return nil
			})
		})
	}
}

// TestTrimmerReceivedLog: a received log is trimmed no further than this
// peer applied it, whatever the others acknowledged.
func TestTrimmerReceivedLog(t *testing.T) {
	clock := &testClock{t: time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)}
	me, author := newTestPeer(t, 101, clock), newTestPeer(t, 102, clock)
	other := realize.PeerID{0xa3}
	author.appendEntries(t, 10)
	copyLog(t, author, me)
	err := me.db.Update(func(tx *bolt.Tx) error {
		if err := me.log.SetApplied(tx, "docs", author.id, 4); err != nil {
			return err
		}
		if err := me.log.SetAck(tx, "docs", other, author.id, 10); err != nil {
			return err
		}
		return me.log.Heard(tx, other)
	})
	if err != nil {
		t.Fatal(err)
	}
	tr := &Trimmer{DB: me.db, Log: me.log, Self: me.id, Arena: me.arena, Clock: clock, InactiveAfter: time.Hour,
		Peers: func() []realize.PeerID { return []realize.PeerID{author.id, other} }}
	rep, err := tr.Trim(t.Context())
	if err != nil || rep.Entries != 4 {
		t.Fatalf("trim: %+v, %v; want 4 entries dropped", rep, err)
	}
	me.db.View(func(tx *bolt.Tx) error {
		if first, _, _ := me.log.Retained(tx, "docs", author.id); first != 5 {
			t.Errorf("received log kept from %d, want 5 (applied up to 4)", first)
		}
		return nil
	})
}

// TestForgettable: a tombstone goes once this peer decided everything the
// deletion followed and every peer acknowledged the deletion itself.
func TestForgettable(t *testing.T) {
	self, p1, p2 := realize.PeerID{1}, realize.PeerID{2}, realize.PeerID{3}
	del := func(origin realize.PeerID, v realize.VersionVector) *real.Record {
		return &real.Record{Deleted: true, Origin: origin, Version: v}
	}
	acked := func(n uint64) map[realize.PeerID]map[realize.PeerID]uint64 {
		return map[realize.PeerID]map[realize.PeerID]uint64{p1: {p2: n, self: n}, p2: {self: n}}
	}
	tests := []struct {
		name  string
		rec   *real.Record
		known realize.VersionVector
		acks  map[realize.PeerID]map[realize.PeerID]uint64
		want  bool
	}{
		{"own deletion, all acked", del(self, realize.VersionVector{self: 5, p2: 2}), realize.VersionVector{self: 5, p2: 2}, acked(5), true},
		{"own deletion, one peer lags", del(self, realize.VersionVector{self: 5}), realize.VersionVector{self: 5}, acked(4), false},
		{"a change it followed not decided here", del(self, realize.VersionVector{self: 5, p2: 3}), realize.VersionVector{self: 5, p2: 2}, acked(5), false},
		{"p2's deletion, p1 acked it", del(p2, realize.VersionVector{p2: 5}), realize.VersionVector{p2: 5}, acked(5), true},
		{"p2's deletion, p1 did not", del(p2, realize.VersionVector{p2: 6}), realize.VersionVector{p2: 6}, acked(5), false},
		{"live record", &real.Record{Origin: self, Version: realize.VersionVector{self: 1}}, realize.VersionVector{self: 9}, acked(9), false},
		{"no origin", del(realize.PeerID{}, realize.VersionVector{self: 1}), realize.VersionVector{self: 9}, acked(9), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Forgettable(tc.rec, tc.known, []realize.PeerID{p1, p2}, tc.acks); got != tc.want {
				t.Errorf("Forgettable = %v, want %v", got, tc.want)
			}
		})
	}
}
