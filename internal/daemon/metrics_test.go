package daemon

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/realizefs/realize"
	"github.com/realizefs/realize/household"
	"github.com/realizefs/realize/internal/config"
	"github.com/realizefs/realize/internal/control"
	"github.com/realizefs/realize/internal/store"
	"github.com/realizefs/realize/unreal"
	"github.com/zeebo/blake3"
)

// scrape gets the endpoint's text exposition.
func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s %v\n%s", resp.Status, err, b)
	}
	return string(b)
}

// sample finds the line of one sample ("name{labels} value") and returns
// its value as text ("" when absent).
func sample(text, series string) string {
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			return v
		}
	}
	return ""
}

func TestMetricsEndpoint(t *testing.T) {
	cfg := testConfig(t)
	cfg.Metrics = "127.0.0.1:0"
	socket, stop := runDaemon(t, cfg, "v-test")
	c := control.NewClient(socket)
	defer c.Close()
	rep, err := c.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Metrics == "" || rep.MetricsError != "" || rep.Transfers == nil {
		t.Fatalf("status: metrics %q, error %q, transfers %v", rep.Metrics, rep.MetricsError, rep.Transfers)
	}
	text := scrape(t, rep.Metrics)
	for _, series := range []string{
		`realize_daemon_info{name="test",peer_id="` + rep.Daemon.Peer.String() + `",version="v-test"}`,
		`realize_arena_files{arena="docs"}`, `realize_arena_unreal_files{arena="docs"}`, `realize_arena_bytes{arena="docs"}`,
		`realize_sync_received_bytes_total{arena="docs"}`, `realize_sync_rejected_blocks_total{arena="docs"}`,
		`realize_cache_hits_total`, `realize_cache_misses_total`, `realize_cache_fetched_bytes_total`,
		`realize_cache_evicted_bytes_total`, `realize_cache_used_bytes`, `realize_cache_limit_bytes`,
		`realize_cache_rejected_blocks_total`, `realize_transfers{kind="sync"}`, `realize_transfers{kind="pin"}`,
		`realize_transfers{kind="read"}`,
	} {
		if sample(text, series) == "" {
			t.Errorf("no %s in:\n%s", series, text)
		}
	}
	if !strings.Contains(text, "\ngo_goroutines ") || !strings.Contains(text, "# TYPE realize_cache_hits_total counter") {
		t.Errorf("runtime metrics or types missing:\n%s", text)
	}

	// Values are read at scrape time: a new file shows up.
	if err := os.WriteFile(filepath.Join(cfg.Arenas[0].Dir, "a.txt"), []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "arena_files to count the new file", func() bool {
		text := scrape(t, rep.Metrics)
		return sample(text, `realize_arena_files{arena="docs"}`) == "1" && sample(text, `realize_arena_bytes{arena="docs"}`) == "5"
	})

	if err := stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if resp, err := http.Get("http://" + rep.Metrics + "/metrics"); err == nil {
		resp.Body.Close()
		t.Errorf("endpoint still answers after shutdown")
	}
}

func TestMetricsEndpointBusyIsReportedNotFatal(t *testing.T) {
	cfg := testConfig(t)
	other, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	cfg.Metrics = other.Addr().String()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, quiet(), Options{Ready: func(s string) { ready <- s }}) }()
	var socket string
	select {
	case socket = <-ready:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("daemon not ready after 10s")
	}
	c := control.NewClient(socket)
	defer c.Close()
	rep, err := c.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Metrics != "" || !strings.Contains(rep.MetricsError, "listen metrics") {
		t.Errorf("metrics %q, error %q", rep.Metrics, rep.MetricsError)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// fakeSource serves whole-blob single blocks (blobs up to one block need
// no block map) from one peer.
type fakeSource struct {
	mu    sync.Mutex
	blobs map[realize.Hash][]byte
	asked int
}

var fakePeer = realize.PeerID{0xfe}

func (f *fakeSource) Sources(realize.ArenaName) []realize.PeerID { return []realize.PeerID{fakePeer} }
func (f *fakeSource) BlockMap(context.Context, realize.PeerID, realize.ArenaName, realize.Hash) (realize.BlockMap, error) {
	return nil, errors.New("small blobs need no map")
}
func (f *fakeSource) ReadBlocks(ctx context.Context, peer realize.PeerID, arena realize.ArenaName, blob realize.Hash, first, n int, fn func(int, []byte) error) error {
	f.mu.Lock()
	data, ok := f.blobs[blob]
	f.asked++
	f.mu.Unlock()
	if !ok || first != 0 {
		return &realize.Error{Op: "read blocks", Kind: realize.NotExist, Err: errors.New("no such blob")}
	}
	return fn(0, data)
}

// cacheDaemon is a daemon with only a cache (over src) and its metrics
// collector, for tests of what moves when files are read.
func cacheDaemon(t *testing.T, src unreal.BlockSource, clock realize.Clock) (*Daemon, *prometheus.Registry) {
	t.Helper()
	dir := t.TempDir()
	id, err := household.NewIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(t.Context(), dir, store.Options{Peer: id.ID()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	d := &Daemon{cfg: &config.Config{Name: "solo", Data: dir, Peers: []config.Peer{{Name: "nas", Key: fakePeer}}},
		id: id, db: db, clock: clock, log: quiet(), version: "t"}
	d.xfers = newTransfers(clock, d.peerName)
	d.cache, err = unreal.OpenCache(t.Context(), unreal.CacheOptions{DB: db, Dir: filepath.Join(dir, CacheDir),
		Source: cacheSource(src, d.xfers), Max: config.Size{Bytes: 1 << 30}, Clock: clock, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.cache.Close() })
	reg := prometheus.NewRegistry()
	reg.MustRegister(newCollector(d))
	return d, reg
}

// gathered returns the value of one series (labels as name=value pairs).
func gathered(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					found = found || lp.GetName() == labels[i] && lp.GetValue() == labels[i+1]
				}
				if !found {
					continue metrics
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no series %s %v", name, labels)
	return 0
}

func TestMetricsMoveWithCacheReads(t *testing.T) {
	data := bytes.Repeat([]byte("realize "), 1000) // 8000 bytes: one block
	blob := realize.Hash(blake3.Sum256(data))
	src := &fakeSource{blobs: map[realize.Hash][]byte{blob: data}}
	clock := &stepClock{now: time.Unix(1_700_000_000, 0)}
	d, reg := cacheDaemon(t, src, clock)
	m := realize.Meta{Kind: realize.KindFile, Blob: blob, Size: int64(len(data))}

	if v := gathered(t, reg, "realize_cache_misses_total"); v != 0 {
		t.Fatalf("misses before any read: %v", v)
	}
	closed := d.xfers.opened("docs", "notes/big.txt", m)
	buf := make([]byte, 100)
	if _, err := d.cache.ReadAt(t.Context(), "docs", m, buf, 0); err != nil {
		t.Fatal(err)
	}
	if v := gathered(t, reg, "realize_cache_misses_total"); v != 1 {
		t.Errorf("misses after the first read: %v", v)
	}
	if v := gathered(t, reg, "realize_cache_fetched_bytes_total"); v != float64(len(data)) {
		t.Errorf("fetched after the first read: %v", v)
	}
	// The fetcher counts a block once the cache kept it, which wakes the
	// reader: ReadAt may return a moment before the block is counted.
	waitFor(t, 5*time.Second, "the read listed", func() bool { return gathered(t, reg, "realize_transfers", "kind", "read") == 1 })
	// The fetch is listed as a read of the open file, with its peer.
	xs := d.xfers.list()
	if len(xs) != 1 {
		t.Fatalf("transfers %+v", xs)
	}
	if x := xs[0]; x.Kind != control.TransferRead || x.Arena != "docs" || x.Path != "notes/big.txt" || x.Bytes != m.Size ||
		x.BytesDone != m.Size || x.Peer == nil || *x.Peer != fakePeer || x.PeerName != "nas" || x.Rate != m.Size || x.Blob != nil {
		t.Errorf("read transfer %+v", x)
	}
	// A second read is a hit; nothing more is fetched.
	if _, err := d.cache.ReadAt(t.Context(), "docs", m, buf, 200); err != nil {
		t.Fatal(err)
	}
	if v := gathered(t, reg, "realize_cache_hits_total"); v < 1 {
		t.Errorf("hits after the second read: %v", v)
	}
	if v := gathered(t, reg, "realize_cache_used_bytes"); v != float64(len(data)) {
		t.Errorf("used: %v", v)
	}
	if v := gathered(t, reg, "realize_cache_limit_bytes"); v <= 0 {
		t.Errorf("limit: %v", v)
	}
	closed()
	// Reads linger a few seconds after their last bytes, then go.
	clock.step(readLinger + time.Second)
	if xs := d.xfers.list(); len(xs) != 0 {
		t.Errorf("transfers after the linger: %+v", xs)
	}
	if v := gathered(t, reg, "realize_transfers", "kind", "read"); v != 0 {
		t.Errorf("read transfers after the linger: %v", v)
	}
	if v := gathered(t, reg, "realize_daemon_info", "name", "solo", "version", "t"); v != 1 {
		t.Errorf("info: %v", v)
	}
}

// stepClock is a clock tests move by hand.
type stepClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *stepClock) step(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestRateMeter(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	var m rateMeter
	m.add(start, 1000)
	if r := m.rate(start.Add(100*time.Millisecond), start); r != 1000 {
		t.Errorf("first burst: %d/s, want 1000 (at least one second)", r)
	}
	for s := 1; s < 10; s++ {
		m.add(start.Add(time.Duration(s)*time.Second), 1000)
	}
	// Five slots of 1000 bytes in the last 4.5 s.
	if r := m.rate(start.Add(9*time.Second+500*time.Millisecond), start); r != 1111 {
		t.Errorf("steady: %d/s", r)
	}
	// Nothing for a while: the rate falls to zero.
	if r := m.rate(start.Add(30*time.Second), start); r != 0 {
		t.Errorf("idle: %d/s", r)
	}
}

func TestTempTarget(t *testing.T) {
	root := filepath.Join(string(filepath.Separator), "home", "me", "docs")
	for _, tt := range []struct {
		tmp  string
		want realize.Path
	}{
		{filepath.Join(root, "sub", "dir", "file.txt"), ""},
		{filepath.Join(root, "sub", "dir", ".realize-tmp-1700000000123-file-with-dash.txt"), "sub/dir/file-with-dash.txt"},
		{filepath.Join(root, ".realize-tmp-1-top"), "top"},
		{filepath.Join(root, "..", ".realize-tmp-1-out"), ""},
	} {
		if got := tempTarget(root, tt.tmp); got != tt.want {
			t.Errorf("tempTarget(%q) = %q, want %q", tt.tmp, got, tt.want)
		}
	}
}

func TestPinTransferTakesItsCacheFetches(t *testing.T) {
	clock := &stepClock{now: time.Unix(1_700_000_000, 0)}
	ts := newTransfers(clock, func(realize.PeerID) string { return "nas" })
	id, x := ts.start(control.TransferStatus{Kind: control.TransferPin, Arena: "docs", Path: "photos"})
	blob := realize.Hash{1}
	ev := &control.PinEvent{Arena: "docs", Path: "photos", Files: 2, Bytes: 300, Current: "photos/a.jpg"}
	ts.pinProgress(x, ev, blob)
	ts.cacheFetched("docs", blob, fakePeer, 100)
	ev.BytesDone = 100
	ts.pinProgress(x, ev, blob)
	xs := ts.list()
	if len(xs) != 1 {
		t.Fatalf("the pin's fetch was listed apart: %+v", xs)
	}
	if p := xs[0]; p.Kind != control.TransferPin || p.Files != 2 || p.BytesDone != 100 || p.Bytes != 300 ||
		p.Current != "photos/a.jpg" || p.Peer == nil || *p.Peer != fakePeer || p.PeerName != "nas" || p.Rate != 100 {
		t.Errorf("pin %+v", p)
	}
	ts.end(id)
	// Another fetch of the same content is now a read (of unknown path).
	ts.cacheFetched("docs", blob, fakePeer, 10)
	xs = ts.list()
	if len(xs) != 1 || xs[0].Kind != control.TransferRead || xs[0].Path != "" || xs[0].Blob == nil || *xs[0].Blob != blob {
		t.Errorf("after the pin: %+v", xs)
	}
}
