package daemon

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/realizefs/realize/household"
	"github.com/realizefs/realize/internal/config"
	"github.com/realizefs/realize/internal/control"
)

// freeUDP returns a loopback UDP address nothing listens on now.
func freeUDP(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

// peerConfigs returns the configs of two peers, alpha and beta, that know
// each other and listen on loopback.
func peerConfigs(t *testing.T) (a, b *config.Config) {
	t.Helper()
	a, b = testConfig(t), testConfig(t)
	a.Name, b.Name = "alpha", "beta"
	a.Listen, b.Listen = freeUDP(t), freeUDP(t)
	ida, err := household.LoadIdentity(household.KeyPath(a.Data))
	if err != nil {
		t.Fatal(err)
	}
	idb, err := household.LoadIdentity(household.KeyPath(b.Data))
	if err != nil {
		t.Fatal(err)
	}
	a.Peers = []config.Peer{{Name: "beta", Key: idb.ID(), Address: b.Listen}}
	b.Peers = []config.Peer{{Name: "alpha", Key: ida.ID(), Address: a.Listen}}
	return a, b
}

// runClient runs cfg until the test ends and returns a control client.
func runClient(t *testing.T, cfg *config.Config) *control.Client {
	t.Helper()
	socket, _ := runDaemon(t, cfg, "")
	c := control.NewClient(socket)
	t.Cleanup(c.Close)
	return c
}

// Two daemons on loopback: a file made on one is replicated to the other
// (pinned there), and the bytes show on both sides' metrics, per peer.
func TestMetricsMoveWithReplication(t *testing.T) {
	if testing.Short() {
		t.Skip("two daemons")
	}
	a, b := peerConfigs(t)
	a.Metrics, b.Metrics = "127.0.0.1:0", "127.0.0.1:0"
	b.Arenas[0].Pin = true
	content := bytes.Repeat([]byte("0123456789abcdef"), 200_000) // 3.2 MB: several blocks
	if err := os.WriteFile(filepath.Join(a.Arenas[0].Dir, "big.bin"), content, 0o600); err != nil {
		t.Fatal(err)
	}
	ca, cb := runClient(t, a), runClient(t, b)
	ra, err := ca.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	rb, err := cb.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "big.bin replicated to beta", func() bool {
		got, err := os.ReadFile(filepath.Join(b.Arenas[0].Dir, "big.bin"))
		return err == nil && bytes.Equal(got, content)
	})
	atLeast := func(text, series string, min float64) {
		t.Helper()
		v, err := strconv.ParseFloat(sample(text, series), 64)
		if err != nil || v < min {
			t.Errorf("%s = %q, want at least %v", series, sample(text, series), min)
		}
	}
	// The file lands on disk an instant before its index record commits.
	waitFor(t, 10*time.Second, "beta counts big.bin", func() bool {
		return sample(scrape(t, rb.Metrics), `realize_arena_files{arena="docs"}`) == "1"
	})
	tb := scrape(t, rb.Metrics)
	atLeast(tb, `realize_peer_connected{peer="alpha"}`, 1)
	atLeast(tb, `realize_peer_received_bytes_total{peer="alpha"}`, float64(len(content)))
	atLeast(tb, `realize_sync_received_bytes_total{arena="docs"}`, float64(len(content)))
	atLeast(tb, `realize_arena_files{arena="docs"}`, 1)
	atLeast(tb, `realize_peer_lag_entries{arena="docs",peer="alpha"}`, 0)
	ta := scrape(t, ra.Metrics)
	atLeast(ta, `realize_peer_sent_bytes_total{peer="beta"}`, float64(len(content)))
	if sample(tb, `realize_sync_rejected_blocks_total{arena="docs"}`) != "0" {
		t.Errorf("rejected blocks: %s", sample(tb, `realize_sync_rejected_blocks_total{arena="docs"}`))
	}
}
