// Package harness runs several Realize peers in one process for tests: each
// with its own database, key and real directory, linked by an in-memory
// network that can be partitioned and healed. History travels as the
// protocol carries it (signed pages, relayed, verified with AppendRemote)
// and files are placed by the consensus applier, so what converges here is
// what converges between daemons; only the transport is replaced.
package harness

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/consensus"
	"github.com/realizefs/realize/history"
	"github.com/realizefs/realize/internal/store"
	"github.com/realizefs/realize/real"
	bolt "go.etcd.io/bbolt"
)

// Arena is the one arena every harness peer shares.
const Arena realize.ArenaName = "shared"

// Peer is one in-process peer.
type Peer struct {
	Index int
	ID    realize.PeerID
	Root  string // the real directory
	DB    *store.DB
	Log   *history.Log
	Arena *real.Arena
	repl  *consensus.Replicator
	// Trimmer trims this peer's history (its Peers are the other peers).
	Trimmer *consensus.Trimmer
	// Stats counts bytes this peer received from other peers.
	Stats consensus.FetchStats
}

// Fetched returns the bytes this peer received from other peers.
func (p *Peer) Fetched() int64 {
	p.Stats.Lock()
	defer p.Stats.Unlock()
	return p.Stats.Received
}

// Household is a set of peers and the links between them.
type Household struct {
	t      testing.TB
	Peers  []*Peer
	linked [][]bool
	// Clock is every peer's clock for history (entry times, when peers
	// were last heard from): tests move it to make peers inactive.
	Clock *Clock
	acked map[[2]int]acked // what from (0) last told to (1)
	// Trimmed sums what every Trim did: entries and tombstones dropped,
	// and each time a peer was found inactive.
	Trimmed consensus.TrimReport
	// DeleteGuard is every peer's delete guard share (percent, 0: off;
	// real.ArenaOptions.DeleteGuard), asked at each decision. New sets
	// real.DefaultDeleteGuard.
	DeleteGuard float64
}

type signer struct{ priv ed25519.PrivateKey }

func (s signer) ID() (p realize.PeerID)        { copy(p[:], s.priv.Public().(ed25519.PublicKey)); return p }
func (s signer) Sign(m []byte) ([]byte, error) { return ed25519.Sign(s.priv, m), nil }

// Verify checks a peer's signature (ed25519, as household.Verify).
func Verify(p realize.PeerID, msg, sig []byte) bool { return ed25519.Verify(p[:], msg, sig) }

// New starts n connected peers.
func New(t testing.TB, n int) *Household {
	h := &Household{t: t, Clock: NewClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)), DeleteGuard: real.DefaultDeleteGuard}
	for i := 0; i < n; i++ {
		h.Peers = append(h.Peers, h.newPeer(i))
	}
	h.Heal()
	return h
}

func (h *Household) newPeer(i int) *Peer {
	seed := make([]byte, ed25519.SeedSize)
	seed[0], seed[1] = byte(i+1), 0x5a
	s := signer{ed25519.NewKeyFromSeed(seed)}
	dir := h.t.TempDir()
	p := &Peer{Index: i, ID: s.ID(), Root: filepath.Join(dir, "real"), Log: history.New(s.ID(), s, h.Clock)}
	for _, d := range []string{p.Root, filepath.Join(dir, "data")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			h.t.Fatal(err)
		}
	}
	db, err := store.Open(context.Background(), filepath.Join(dir, "data"), store.Options{Peer: s.ID()})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { db.Close() })
	p.DB = db
	p.Arena, err = real.NewArena(real.ArenaOptions{Name: Arena, Root: p.Root, DB: db, Log: p.Log, Self: p.ID, Workers: 2,
		DeleteGuard: func() float64 { return h.DeleteGuard }})
	if err != nil {
		h.t.Fatal(err)
	}
	applier := &consensus.Applier{Arena: p.Arena, Fetch: &consensus.BlockFetcher{Source: &source{h: h, to: p}, Local: p.Arena, Stats: &p.Stats}}
	p.repl = &consensus.Replicator{DB: db, Log: p.Log, Self: p.ID, Arena: Arena, Applier: applier, Verify: Verify}
	p.Trimmer = &consensus.Trimmer{DB: db, Log: p.Log, Self: p.ID, Arena: p.Arena, Clock: h.Clock,
		InactiveAfter: 30 * 24 * time.Hour, Peers: func() []realize.PeerID { return h.others(p) }}
	return p
}

// others lists the ids of every peer but p.
func (h *Household) others(p *Peer) []realize.PeerID {
	var out []realize.PeerID
	for _, o := range h.Peers {
		if o != p {
			out = append(out, o.ID)
		}
	}
	return out
}

// Trim runs every peer's trimmer once.
func (h *Household) Trim(ctx context.Context) error {
	for _, p := range h.Peers {
		rep, err := p.Trimmer.Trim(ctx)
		if err != nil {
			return fmt.Errorf("peer %d trimming: %w", p.Index, err)
		}
		h.Trimmed.Entries += rep.Entries
		h.Trimmed.Tombstones += rep.Tombstones
		h.Trimmed.Inactive = append(h.Trimmed.Inactive, rep.Inactive...)
	}
	return nil
}

// Partition splits the household: peers talk only within their group.
func (h *Household) Partition(groups ...[]int) {
	for i := range h.linked {
		clear(h.linked[i])
	}
	for _, g := range groups {
		for _, a := range g {
			for _, b := range g {
				h.linked[a][b] = true
			}
		}
	}
}

// Heal links every peer with every other.
func (h *Household) Heal() {
	h.linked = make([][]bool, len(h.Peers))
	for i := range h.linked {
		h.linked[i] = make([]bool, len(h.Peers))
		for j := range h.linked[i] {
			h.linked[i][j] = true
		}
	}
}

// Linked tells whether two peers can talk.
func (h *Household) Linked(a, b int) bool { return a != b && h.linked[a][b] }

// Scan makes every peer record its local changes.
func (h *Household) Scan(ctx context.Context) error {
	for _, p := range h.Peers {
		if err := p.Arena.ScanAll(ctx); err != nil {
			return fmt.Errorf("peer %d: %w", p.Index, err)
		}
	}
	return nil
}

// Converge scans, then exchanges history between linked peers until a
// round changes nothing (at most maxRounds rounds).
func (h *Household) Converge(ctx context.Context, maxRounds int) error {
	if err := h.Scan(ctx); err != nil {
		return err
	}
	for round := 0; round < maxRounds; round++ {
		moved := false
		for _, to := range h.Peers {
			for _, from := range h.Peers {
				if !h.Linked(from.Index, to.Index) {
					continue
				}
				n, err := to.repl.Pull(ctx, consensus.LocalSource{DB: from.DB, Log: from.Log, Arena: from.Arena})
				if realize.KindOf(err) == realize.Unavailable {
					err = nil // a catch-up waiting for bytes: the next round tries again
				}
				if err == nil {
					err = h.ack(from, to)
				}
				if err != nil {
					return fmt.Errorf("peer %d from %d: %w", to.Index, from.Index, err)
				}
				moved = moved || n > 0
			}
			applied, err := to.repl.ApplyPending(ctx)
			if realize.KindOf(err) == realize.Unavailable {
				err = nil // a log waiting for bytes: the next round tries again
			}
			if err != nil {
				return fmt.Errorf("peer %d applying: %w", to.Index, err)
			}
			moved = moved || applied > 0
		}
		if !moved {
			return nil
		}
	}
	return fmt.Errorf("no convergence after %d rounds", maxRounds)
}

// acked is what one peer last told another.
type acked struct {
	at     time.Time
	stored map[realize.PeerID]uint64
}

// ack tells from how far to has stored each log from offers, as a daemon
// does after every pull (the Ack message): from hears from to. An ack
// that would say nothing new at the same time is skipped: it saves a
// commit per pair of peers per round.
func (h *Household) ack(from, to *Peer) error {
	stored, err := storedHeads(from, to)
	if err != nil {
		return err
	}
	if h.acked == nil {
		h.acked = map[[2]int]acked{}
	}
	k, now := [2]int{from.Index, to.Index}, h.Clock.Now()
	if last, ok := h.acked[k]; ok && last.at.Equal(now) && maps.Equal(last.stored, stored) {
		return nil
	}
	h.acked[k] = acked{now, stored}
	return from.DB.Update(func(tx *bolt.Tx) error {
		if err := from.Log.Heard(tx, to.ID); err != nil {
			return err
		}
		for author, seq := range stored {
			if err := from.Log.SetAck(tx, Arena, to.ID, author, seq); err != nil {
				return err
			}
		}
		return nil
	})
}

// storedHeads returns how far to has stored each log from offers.
func storedHeads(from, to *Peer) (map[realize.PeerID]uint64, error) {
	var heads []history.LogHead
	err := from.DB.View(func(tx *bolt.Tx) (err error) { heads, err = from.Log.Heads(tx, Arena); return err })
	if err != nil {
		return nil, err
	}
	stored := make(map[realize.PeerID]uint64, len(heads))
	err = to.DB.View(func(tx *bolt.Tx) error {
		for _, h := range heads {
			head, err := to.Log.Head(tx, Arena, h.Peer)
			if err != nil {
				return err
			}
			stored[h.Peer] = head.Seq
		}
		return nil
	})
	return stored, err
}

// Clock is a settable clock, safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock stopped at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// source serves blocks from the linked peers' real directories, through
// the same verified reads the household server uses.
type source struct {
	h  *Household
	to *Peer
}

func (s *source) peer(id realize.PeerID) *Peer {
	for _, p := range s.h.Peers {
		if p.ID == id && s.h.Linked(p.Index, s.to.Index) {
			return p
		}
	}
	return nil
}

func (s *source) Sources(realize.ArenaName) []realize.PeerID {
	var out []realize.PeerID
	for _, p := range s.h.Peers {
		if s.h.Linked(p.Index, s.to.Index) {
			out = append(out, p.ID)
		}
	}
	return out
}

func (s *source) BlockMap(_ context.Context, id realize.PeerID, _ realize.ArenaName, blob realize.Hash) (realize.BlockMap, error) {
	p := s.peer(id)
	if p == nil {
		return nil, errors.New("not linked")
	}
	return p.Arena.BlockMap(blob)
}

func (s *source) ReadBlocks(ctx context.Context, id realize.PeerID, _ realize.ArenaName, blob realize.Hash, first, n int, fn func(int, []byte) error) error {
	p := s.peer(id)
	if p == nil {
		return errors.New("not linked")
	}
	return p.Arena.ReadBlocks(ctx, blob, first, n, fn)
}

// Resolve resolves the conflict at path on this peer, as `realize
// resolve` does through the daemon.
func (p *Peer) Resolve(ctx context.Context, path realize.Path, r consensus.Resolution) (*consensus.Resolved, error) {
	return p.repl.Applier.Resolve(ctx, path, r)
}
