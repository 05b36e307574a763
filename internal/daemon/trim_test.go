package daemon

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/realizefs/realize/internal/config"
	"github.com/realizefs/realize/internal/control"
)

// runTrimming runs cfg with a fast trim loop until the test ends.
func runTrimming(t *testing.T, cfg *config.Config) *control.Client {
	t.Helper()
	socket, _ := runDaemonWith(t, cfg, Options{TrimEvery: 200 * time.Millisecond})
	c := control.NewClient(socket)
	t.Cleanup(c.Close)
	return c
}

// Two daemons: once each has stored and acknowledged the other's changes,
// both trim their logs down to the head (no audit retention configured),
// `realize log --verify` still verifies, and status reports when the peer
// was last heard from.
func TestDaemonsTrimHistory(t *testing.T) {
	if testing.Short() {
		t.Skip("two daemons")
	}
	a, b := peerConfigs(t)
	b.Arenas[0].Pin = true
	for _, c := range []*config.Config{a, b} {
		c.History = config.History{AuditKeep: 0, InactiveAfter: time.Hour}
	}
	for _, f := range []string{"one", "two", "three"} {
		if err := os.WriteFile(filepath.Join(a.Arenas[0].Dir, f), []byte(f), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ca, cb := runTrimming(t, a), runTrimming(t, b)
	// Files are applied concurrently: "three" may land before "two".
	waitFor(t, 30*time.Second, "files replicated to beta", func() bool {
		for _, f := range []string{"one", "two", "three"} {
			if _, err := os.Stat(filepath.Join(b.Arenas[0].Dir, f)); err != nil {
				return false
			}
		}
		return true
	})
	if err := os.Remove(filepath.Join(a.Arenas[0].Dir, "two")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "deletion replicated to beta", func() bool {
		_, err := os.Stat(filepath.Join(b.Arenas[0].Dir, "two"))
		return os.IsNotExist(err)
	})
	entries := func(c *control.Client, peer string) int {
		n := 0
		c.Log(t.Context(), control.LogQuery{Arena: "docs", Peer: peer}, func(*control.LogRecord) error { n++; return nil })
		return n
	}
	waitFor(t, 30*time.Second, "both logs trimmed to their head", func() bool {
		return entries(ca, "self") == 1 && entries(cb, "self") == 1 && entries(ca, "beta") == 1 && entries(cb, "alpha") == 1
	})
	for _, c := range []*control.Client{ca, cb} {
		rep, err := c.Verify(t.Context(), control.LogQuery{})
		if err != nil || !rep.OK {
			t.Fatalf("verify after trimming: %+v, %v", rep, err)
		}
		for _, l := range rep.Logs {
			if l.First != l.Head || l.Head < 4 {
				t.Errorf("log %s keeps %d-%d", l.Peer.Short(), l.First, l.Head)
			}
		}
	}
	st, err := ca.Status(t.Context())
	if err != nil || len(st.Peers) != 1 || st.Peers[0].Heard.IsZero() || st.Peers[0].Inactive {
		t.Fatalf("status peers %+v, %v", st.Peers, err)
	}
}
