package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/realizefs/realize"
	"github.com/realizefs/realize/household"
)

// startMetrics serves Prometheus metrics (GET /metrics) on the configured
// loopback address, if one is configured, from a registry this daemon
// owns. Every value is read from the daemon's own counters when scraped:
// nothing is counted twice. It returns the address served.
func startMetrics(ctx context.Context, d *Daemon, stack *cleanup) (string, error) {
	addr := d.config().Metrics
	if addr == "" {
		return "", nil
	}
	reg := prometheus.NewRegistry()
	if err := reg.Register(newCollector(d)); err != nil {
		return "", &realize.Error{Op: "metrics", Kind: realize.Other, Err: err}
	}
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return "", &realize.Error{Op: "metrics", Kind: realize.Other, Err: err}
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return "", &realize.Error{Op: "metrics", Kind: realize.Other, Err: err}
	}
	errLog := slog.NewLogLogger(d.log.Handler(), slog.LevelWarn)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: errLog, Registry: reg}))
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return "", &realize.Error{Op: "listen metrics", Kind: realize.Busy, Path: addr, Err: err}
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: errLog}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	stack.push("stop metrics endpoint", func(ctx context.Context) error {
		err := srv.Shutdown(ctx)
		if err != nil {
			srv.Close()
		}
		if serr := <-served; err == nil && !errors.Is(serr, http.ErrServerClosed) {
			err = serr
		}
		return err
	})
	d.log.Info("metrics endpoint listening", "addr", ln.Addr().String())
	return ln.Addr().String(), nil
}

// collector reads the daemon's state at scrape time. Peers and arenas come
// and go with the config, so it is a custom Collector (labels per scrape)
// rather than fixed GaugeFuncs.
type collector struct {
	d *Daemon

	info                             *prometheus.Desc
	peerConnected, peerSent, peerRcv *prometheus.Desc
	peerLag, peerBehind              *prometheus.Desc
	arenaFiles, arenaUnreal          *prometheus.Desc
	arenaBytes, arenaPending         *prometheus.Desc
	syncReceived, syncReused         *prometheus.Desc
	syncRejected                     *prometheus.Desc
	cacheHits, cacheMisses           *prometheus.Desc
	cacheFetched, cacheEvicted       *prometheus.Desc
	cacheUsed, cacheLimit            *prometheus.Desc
	cacheRejected                    *prometheus.Desc
	nfsRequests                      *prometheus.Desc
	transfers                        *prometheus.Desc
}

func newCollector(d *Daemon) *collector {
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("realize_"+name, help, labels, nil)
	}
	return &collector{
		d:             d,
		info:          desc("daemon_info", "Always 1; labels name this peer and the daemon's version.", "name", "peer_id", "version"),
		peerConnected: desc("peer_connected", "1 while a configured peer is connected, else 0.", "peer"),
		peerSent:      desc("peer_sent_bytes_total", "Bytes sent to a peer (QUIC packets, retransmissions included) since the daemon started.", "peer"),
		peerRcv:       desc("peer_received_bytes_total", "Bytes received from a peer (QUIC packets) since the daemon started.", "peer"),
		peerLag:       desc("peer_lag_entries", "History entries a connected peer announced for an arena that this peer has not stored yet.", "peer", "arena"),
		peerBehind:    desc("peer_behind_entries", "Entries of this peer's own logs that a peer has not acknowledged yet.", "peer"),
		arenaFiles:    desc("arena_files", "Files the arena's index lists, real or unreal.", "arena"),
		arenaUnreal:   desc("arena_unreal_files", "Files of the arena listed here without their bytes.", "arena"),
		arenaBytes:    desc("arena_bytes", "Bytes of the arena's files, real or unreal.", "arena"),
		arenaPending:  desc("arena_pending_hash_files", "Files of the arena waiting to be hashed.", "arena"),
		syncReceived:  desc("sync_received_bytes_total", "Bytes of replicated files received from peers (verified).", "arena"),
		syncReused:    desc("sync_reused_bytes_total", "Bytes of replicated files found already present (resumed transfers, local copies of blocks).", "arena"),
		syncRejected:  desc("sync_rejected_blocks_total", "Blocks a peer sent for a replicated file that failed verification.", "arena"),
		cacheHits:     desc("cache_hits_total", "Blocks of unreal files served from the cache."),
		cacheMisses:   desc("cache_misses_total", "Blocks of unreal files that had to be fetched from peers."),
		cacheFetched:  desc("cache_fetched_bytes_total", "Bytes the cache fetched from peers (verified)."),
		cacheEvicted:  desc("cache_evicted_bytes_total", "Bytes evicted from the cache."),
		cacheUsed:     desc("cache_used_bytes", "Bytes the cache holds."),
		cacheLimit:    desc("cache_limit_bytes", "The cache's current limit in bytes."),
		cacheRejected: desc("cache_rejected_blocks_total", "Blocks the cache rejected: from a peer or from disk, failing verification."),
		nfsRequests:   desc("nfs_requests_total", "Calls the NFS server received, by NFSv3 procedure (MOUNT: mount protocol calls, OTHER: other programs or versions).", "procedure"),
		transfers:     desc("transfers", "Transfers listed by realize status, by kind (sync, pin, read).", "kind"),
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.info, c.peerConnected, c.peerSent, c.peerRcv, c.peerLag, c.peerBehind,
		c.arenaFiles, c.arenaUnreal, c.arenaBytes, c.arenaPending, c.syncReceived, c.syncReused, c.syncRejected,
		c.cacheHits, c.cacheMisses, c.cacheFetched, c.cacheEvicted, c.cacheUsed, c.cacheLimit, c.cacheRejected,
		c.nfsRequests, c.transfers} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	d := c.d
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	counter := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, v, labels...)
	}
	gauge(c.info, 1, d.config().Name, d.id.ID().String(), d.version)
	if n := d.net; n != nil {
		c.collectPeers(n, gauge, counter)
	}
	for _, a := range d.arenaList() {
		name := string(a.Name())
		if st, err := a.Status(); err == nil {
			gauge(c.arenaFiles, float64(st.Files), name)
			gauge(c.arenaUnreal, float64(st.Unreal), name)
			gauge(c.arenaBytes, float64(st.Bytes), name)
			gauge(c.arenaPending, float64(st.PendingHash), name)
		}
		if d.net != nil {
			rcv, reused, rejected := d.net.transfers(a.Name())
			counter(c.syncReceived, float64(rcv), name)
			counter(c.syncReused, float64(reused), name)
			counter(c.syncRejected, float64(rejected), name)
		}
	}
	if d.cache != nil {
		s := d.cache.Stats()
		used, limit := d.cache.Usage()
		counter(c.cacheHits, float64(s.Hits))
		counter(c.cacheMisses, float64(s.Misses))
		counter(c.cacheFetched, float64(s.Fetched))
		counter(c.cacheEvicted, float64(s.Evicted))
		counter(c.cacheRejected, float64(s.Rejected))
		gauge(c.cacheUsed, float64(used))
		gauge(c.cacheLimit, float64(limit))
	}
	if d.nfsSrv != nil {
		for proc, n := range d.nfsSrv.Ops() {
			counter(c.nfsRequests, float64(n), proc)
		}
	}
	for kind, n := range d.xfers.counts() {
		gauge(c.transfers, float64(n), kind)
	}
}

func (c *collector) collectPeers(n *network, gauge, counter func(*prometheus.Desc, float64, ...string)) {
	traffic := n.traffic.totals()
	for _, st := range n.host.Status() {
		name := st.Name
		connected := 0.0
		if st.Connected {
			connected = 1
		}
		gauge(c.peerConnected, connected, name)
		t := traffic[st.ID]
		counter(c.peerSent, float64(t.sent), name)
		counter(c.peerRcv, float64(t.received), name)
		gauge(c.peerBehind, float64(n.behind(st.ID)), name)
		for arena, lag := range n.lagOf(st.ID) {
			gauge(c.peerLag, float64(lag), name, string(arena))
		}
	}
}

// lagOf returns the entries peer announced that this peer lacks, by arena.
func (n *network) lagOf(peer realize.PeerID) map[realize.ArenaName]uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[realize.ArenaName]uint64, len(n.lag[peer]))
	for a, l := range n.lag[peer] {
		out[a] = l
	}
	return out
}

// peerTraffic adds up the bytes moved with each peer over all its
// connections since the daemon started: those closed (their final
// figures) and those open (read live), so the totals never go back.
type peerTraffic struct {
	mu     sync.Mutex
	closed map[realize.PeerID]traffic
	open   map[*household.Conn]bool
}

type traffic struct{ sent, received uint64 }

func (p *peerTraffic) connected(c *household.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open == nil {
		p.open = map[*household.Conn]bool{}
	}
	p.open[c] = true
}

func (p *peerTraffic) disconnected(c *household.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.open[c] {
		return
	}
	delete(p.open, c)
	if p.closed == nil {
		p.closed = map[realize.PeerID]traffic{}
	}
	s, r := c.Traffic()
	t := p.closed[c.Peer()]
	p.closed[c.Peer()] = traffic{t.sent + s, t.received + r}
}

func (p *peerTraffic) totals() map[realize.PeerID]traffic {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[realize.PeerID]traffic, len(p.closed)+len(p.open))
	for id, t := range p.closed {
		out[id] = t
	}
	for c := range p.open {
		s, r := c.Traffic()
		t := out[c.Peer()]
		out[c.Peer()] = traffic{t.sent + s, t.received + r}
	}
	return out
}
