package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/internal/config"
	"github.com/realizefs/realize/internal/control"
)

// TestApproveThroughControl: the daemon's approve answers for a configured
// arena only, says why when there is nothing to approve, and records a
// hold the indexer made; status shows the hold with the live delete_guard.
func TestApproveThroughControl(t *testing.T) {
	cfg := testConfig(t)
	cfg.Arenas[0].DeleteGuard = 50
	cfg.Arenas = append(cfg.Arenas, config.Arena{Name: "gone", Dir: filepath.Join(cfg.Data, "..", "missing")})
	dir := cfg.Arenas[0].Dir
	for i := range 20 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d", i)), []byte(fmt.Sprint(i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	socket, _ := runDaemon(t, cfg, "v")
	c := control.NewClient(socket)
	defer c.Close()
	docs := func() control.ArenaStatus {
		t.Helper()
		rep, err := c.Status(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return rep.Arenas[0]
	}
	waitUntil := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); !ok(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	waitUntil("the files indexed", func() bool { return docs().Files == 20 })

	tests := []struct {
		name  string
		arena realize.ArenaName
		kind  realize.ErrKind
		msg   string
	}{
		{"not configured", "nosuch", realize.NotExist, "no such arena in the config"},
		{"not running", "gone", realize.Unavailable, "not running"},
		{"nothing held", "docs", realize.NotExist, "no deletions are held"},
		{"nothing held anywhere", "", realize.NotExist, "no deletions are held in any arena"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Approve(t.Context(), control.ApproveRequest{Arena: tt.arena})
			if realize.KindOf(err) != tt.kind || err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err = %v, want %v with %q", err, tt.kind, tt.msg)
			}
		})
	}

	for i := range 18 {
		os.Remove(filepath.Join(dir, fmt.Sprintf("f%02d", i)))
	}
	waitUntil("the deletions held", func() bool { h := docs().Held; return h != nil && h.Files == 18 })
	if h := docs().Held; h.Reason != "share" || h.Guard != 50 || h.Percent != 90 || len(h.Sample) != 10 {
		t.Fatalf("held = %+v", h)
	}
	rep, err := c.Approve(t.Context(), control.ApproveRequest{})
	if err != nil || len(rep.Approved) != 1 || rep.Approved[0].Arena != "docs" || rep.Approved[0].Files != 18 {
		t.Fatalf("approve = %+v, %v", rep, err)
	}
	if st := docs(); st.Held != nil || st.Files != 2 || st.SettlingDeletes != 0 {
		t.Fatalf("after approve: %+v", st)
	}
}
