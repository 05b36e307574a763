package daemon

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/consensus"
	"github.com/realizefs/realize/history"
	"github.com/realizefs/realize/household"
	"github.com/realizefs/realize/internal/control"
	bolt "go.etcd.io/bbolt"
)

// network runs the household side of the daemon: the QUIC host, and for
// every arena a replicator that pulls other peers' logs when they announce
// new entries and applies them to the real directory.
type network struct {
	d      *Daemon
	host   *household.Host
	syncs  map[realize.ArenaName]*arenaSync
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu  sync.Mutex
	lag map[realize.PeerID]map[realize.ArenaName]uint64 // entries a peer has that we lack

	traffic peerTraffic // bytes per peer, for metrics (metrics.go)
}

// arenaSync is one arena's replication.
type arenaSync struct {
	repl  *consensus.Replicator
	stats *consensus.FetchStats
	kick  chan struct{} // apply wanted (buffered 1)
}

// applyRetry is how often entries waiting for bytes that no connected
// peer had are tried again.
const applyRetry = 10 * time.Second

func startNetwork(ctx context.Context, d *Daemon) (*network, error) {
	ctx, cancel := context.WithCancel(ctx)
	n := &network{d: d, ctx: ctx, cancel: cancel, syncs: map[realize.ArenaName]*arenaSync{},
		lag: map[realize.PeerID]map[realize.ArenaName]uint64{}}
	mux := household.NewMux()
	data := &household.SyncData{DB: d.db, Log: d.hist, Arena: d.arenas.get}
	if err := household.RegisterSync(mux, data); err != nil {
		cancel()
		return nil, err
	}
	cfg := d.config()
	host, err := household.New(household.Options{
		Identity: d.id, Name: cfg.Name, Listen: cfg.Listen, Peers: n.peers, Arenas: n.sharedWith,
		Mux: mux, OnConnect: n.connected, OnDisconnect: n.disconnected, Logger: d.log, Clock: d.clock,
	})
	if err != nil {
		cancel()
		return nil, err
	}
	n.host = host
	if d.cache, err = openCache(ctx, d, cacheSource(household.Blocks{Host: host}, d.xfers)); err != nil {
		cancel()
		return nil, err
	}
	for _, a := range d.arenas.list {
		s := &arenaSync{stats: &consensus.FetchStats{}, kick: make(chan struct{}, 1)}
		s.repl = &consensus.Replicator{DB: d.db, Log: d.hist, Self: d.id.ID(), Arena: a.Name(), Verify: household.Verify, Logger: d.log,
			Applier: &consensus.Applier{Arena: a, Logger: d.log, Pinned: func(p realize.Path) bool { return d.pinned(a.Name(), p) },
				Fetch: &syncFetcher{arena: a, src: household.Blocks{Host: host}, stats: s.stats, ts: d.xfers}}}
		n.syncs[a.Name()] = s
		n.goRun(func() { n.applyLoop(a.Name(), s) })
	}
	n.goRun(func() {
		if err := host.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			d.log.Error("household stopped", "err", err)
		}
	})
	n.goRun(func() { n.followPeers(ctx) })
	n.goRun(func() { n.trimLoop(ctx) })
	return n, nil
}

func (n *network) goRun(f func()) {
	n.wg.Add(1)
	go func() { defer n.wg.Done(); f() }()
}

// stop closes every connection and waits for the sync goroutines.
func (n *network) stop(ctx context.Context) error {
	n.cancel()
	err := n.host.Close()
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	select {
	case <-done:
		if n.d.cache != nil {
			err = errors.Join(err, n.d.cache.Close())
		}
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// peers is the household as configured now (read on every handshake).
func (n *network) peers() []household.Peer {
	cfg := n.d.config()
	out := make([]household.Peer, 0, len(cfg.Peers))
	for _, p := range cfg.Peers {
		out = append(out, household.Peer{ID: p.Key, Name: p.Name, Address: p.Address})
	}
	return out
}

// sharedWith lists the arenas this peer shares with peer, by config: an
// arena is shared unless its peers list leaves the peer out.
func (n *network) sharedWith(peer realize.PeerID) []realize.ArenaName {
	cfg := n.d.config()
	name := ""
	for _, p := range cfg.Peers {
		if p.Key == peer {
			name = p.Name
		}
	}
	var out []realize.ArenaName
	for _, a := range cfg.Arenas {
		if name != "" && a.SharedWith(name) && n.d.arenas.get(a.Name) != nil {
			out = append(out, a.Name)
		}
	}
	return out
}

// followPeers applies config changes to the connections: new peers are
// dialled, removed ones dropped, arena sharing re-announced.
func (n *network) followPeers(ctx context.Context) {
	first := true
	for range n.d.conf.Subscribe(ctx) {
		if first {
			first = false // the config the host started with
			continue
		}
		if err := n.host.Reconcile(ctx); err != nil && ctx.Err() == nil {
			n.d.log.Warn("applying peer changes failed", "err", err)
		}
	}
}

// superviseEvery is how often a connection's supervisor checks that every
// shared arena is followed: an arena shared later (config change) or a
// watch stream that ended while the connection lives is picked up again.
const superviseEvery = 3 * time.Second

// connected starts a supervisor that follows each arena shared with the
// connection for as long as it lives.
func (n *network) connected(c *household.Conn) {
	n.traffic.connected(c)
	ctx, cancel := context.WithCancel(n.ctx)
	n.goRun(func() { <-c.Done(); cancel() })
	n.goRun(func() { n.supervise(ctx, c) })
}

func (n *network) supervise(ctx context.Context, c *household.Conn) {
	var mu sync.Mutex
	running := map[realize.ArenaName]bool{}
	t := time.NewTicker(superviseEvery)
	defer t.Stop()
	for {
		for _, arena := range c.SharedArenas() {
			s, ok := n.syncs[arena]
			mu.Lock()
			start := ok && !running[arena]
			running[arena] = running[arena] || start
			mu.Unlock()
			if start {
				n.goRun(func() {
					n.watch(ctx, c, arena, s)
					mu.Lock()
					delete(running, arena)
					mu.Unlock()
				})
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (n *network) disconnected(c *household.Conn) {
	n.traffic.disconnected(c)
	n.mu.Lock()
	delete(n.lag, c.Peer())
	n.mu.Unlock()
}

// watch pulls from a peer whenever it announces new entries of an arena,
// then has them applied. It ends with the connection.
func (n *network) watch(ctx context.Context, c *household.Conn, arena realize.ArenaName, s *arenaSync) {
	src := household.PeerSource{Conn: c}
	log := n.d.log.With("peer", c.PeerName(), "arena", string(arena))
	err := src.Watch(ctx, arena, func(heads []history.LogHead) error {
		if _, err := s.repl.Pull(ctx, src); err != nil {
			log.Warn("pulling history failed", "err", err)
		}
		n.noteLag(c.Peer(), arena, heads)
		if err := src.Ack(ctx, arena, n.stored(arena, heads)); err != nil && ctx.Err() == nil {
			log.Debug("ack failed", "err", err)
		}
		select {
		case s.kick <- struct{}{}:
		default:
		}
		return nil
	})
	if err != nil && ctx.Err() == nil {
		log.Info("history watch ended", "err", err)
	}
}

// noteLag records how many entries the peer announced that we do not have.
func (n *network) noteLag(peer realize.PeerID, arena realize.ArenaName, heads []history.LogHead) {
	var lag uint64
	for _, h := range heads {
		if h.Peer == n.d.id.ID() {
			continue
		}
		have := n.haveSeq(arena, h.Peer)
		if h.Seq > have {
			lag += h.Seq - have
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.lag[peer] == nil {
		n.lag[peer] = map[realize.ArenaName]uint64{}
	}
	n.lag[peer][arena] = lag
}

// behind counts the entries of this peer's own logs (of the arenas shared
// with peer) that peer has not acknowledged.
func (n *network) behind(peer realize.PeerID) uint64 {
	var total uint64
	self := n.d.id.ID()
	n.d.db.View(func(tx *bolt.Tx) error {
		for _, arena := range n.sharedWith(peer) {
			h, err := n.d.hist.Head(tx, arena, self)
			if err != nil {
				return err
			}
			if ack := n.d.hist.Ack(tx, arena, peer, self); h.Seq > ack {
				total += h.Seq - ack
			}
		}
		return nil
	})
	return total
}

// stored returns how far this peer has stored each of the announced logs.
func (n *network) stored(arena realize.ArenaName, heads []history.LogHead) []history.LogHead {
	out := make([]history.LogHead, 0, len(heads))
	for _, h := range heads {
		out = append(out, history.LogHead{Peer: h.Peer, Seq: n.haveSeq(arena, h.Peer)})
	}
	return out
}

func (n *network) haveSeq(arena realize.ArenaName, author realize.PeerID) uint64 {
	var seq uint64
	n.d.db.View(func(tx *bolt.Tx) error {
		h, err := n.d.hist.Head(tx, arena, author)
		seq = h.Seq
		return err
	})
	return seq
}

// applyOnce runs one apply pass. A panic (a bug reached through data from
// a peer) is turned into an error: one bad entry must not take the daemon
// down with every other arena.
func (n *network) applyOnce(s *arenaSync) (k int, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("apply panicked: %v", r)
		}
	}()
	return s.repl.ApplyPending(n.ctx)
}

// applyLoop applies pulled entries of one arena, one pass at a time.
func (n *network) applyLoop(arena realize.ArenaName, s *arenaSync) {
	t := time.NewTicker(applyRetry)
	defer t.Stop()
	log := n.d.log.With("arena", string(arena))
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-s.kick:
		case <-t.C:
		}
		k, err := n.applyOnce(s)
		switch {
		case err != nil && n.ctx.Err() == nil && realize.KindOf(err) == realize.Unavailable:
			// Bytes no connected peer has: retried every applyRetry.
			log.Debug("history waits for bytes", "err", err)
		case err != nil && n.ctx.Err() == nil:
			log.Warn("applying history failed", "err", err)
		case k > 0:
			log.Debug("applied history", "entries", k)
		}
	}
}

// status reports every configured peer.
func (n *network) status() []control.PeerStatus {
	out := []control.PeerStatus{}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, st := range n.host.Status() {
		ps := control.PeerStatus{Name: st.Name, Peer: st.ID, Address: st.Address, Connected: st.Connected,
			RemoteAddr: st.RemoteAddr, Since: st.Since, LastSeen: st.LastSeen, LastError: st.LastError}
		for _, lag := range n.lag[st.ID] {
			ps.Lag += lag
		}
		ps.Behind = n.behind(st.ID)
		n.d.db.View(func(tx *bolt.Tx) error {
			ps.Heard, ps.Inactive = n.peerActivity(tx, st.ID, st.Connected)
			return nil
		})
		out = append(out, ps)
	}
	return out
}

// transfers returns an arena's fetch counters.
func (n *network) transfers(arena realize.ArenaName) (received, reused, rejected int64) {
	s, ok := n.syncs[arena]
	if !ok {
		return 0, 0, 0
	}
	s.stats.Lock()
	defer s.stats.Unlock()
	return s.stats.Received, s.stats.Reused, s.stats.Rejected
}
