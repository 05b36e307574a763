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
	"os"
	"path/filepath"
	"testing"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/consensus"
	"github.com/realizefs/realize/history"
	"github.com/realizefs/realize/internal/store"
	"github.com/realizefs/realize/real"
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
}

type signer struct{ priv ed25519.PrivateKey }

func (s signer) ID() (p realize.PeerID)        { copy(p[:], s.priv.Public().(ed25519.PublicKey)); return p }
func (s signer) Sign(m []byte) ([]byte, error) { return ed25519.Sign(s.priv, m), nil }

// Verify checks a peer's signature (ed25519, as household.Verify).
func Verify(p realize.PeerID, msg, sig []byte) bool { return ed25519.Verify(p[:], msg, sig) }

// New starts n connected peers.
func New(t testing.TB, n int) *Household {
	h := &Household{t: t}
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
	p := &Peer{Index: i, ID: s.ID(), Root: filepath.Join(dir, "real"), Log: history.New(s.ID(), s, nil)}
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
	p.Arena, err = real.NewArena(real.ArenaOptions{Name: Arena, Root: p.Root, DB: db, Log: p.Log, Self: p.ID, Workers: 2})
	if err != nil {
		h.t.Fatal(err)
	}
	applier := &consensus.Applier{Arena: p.Arena, Fetch: &consensus.BlockFetcher{Source: &source{h: h, to: p}, Local: p.Arena, Stats: &p.Stats}}
	p.repl = &consensus.Replicator{DB: db, Log: p.Log, Self: p.ID, Arena: Arena, Applier: applier, Verify: Verify}
	return p
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
