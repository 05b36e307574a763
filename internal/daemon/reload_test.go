package daemon

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/household"
	"github.com/realizefs/realize/internal/config"
)

const (
	nasKey   = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	phoneKey = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
)

// fileConfig writes a config the way `realize init` does (with a key in
// its data directory) and returns its path and the loaded config.
func fileConfig(t *testing.T) (string, *config.Config) {
	t.Helper()
	base := testConfig(t)
	dir := filepath.Dir(base.Data)
	doc, err := config.Render(config.Template{Name: "laptop", Data: base.Data, Listen: "127.0.0.1:7741", NFS: "",
		Arenas: []config.TemplateArena{{Name: "docs", Dir: base.Arenas[0].Dir}}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, cfg
}

// logBuffer collects log lines from several goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// waitFor polls cond until it holds or limit passes.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func peerTable(name, key, addr string) string {
	s := "\n[[peer]]\nname = \"" + name + "\"\nkey = \"" + key + "\"\n"
	if addr != "" {
		s += "address = \"" + addr + "\"\n"
	}
	return s
}

func names(peers []config.Peer) []string {
	var out []string
	for _, p := range peers {
		out = append(out, p.Name)
	}
	return out
}

// writeInPlace rewrites the file's bytes (same inode), as `echo >>` does.
func writeInPlace(path, doc string) error { return os.WriteFile(path, []byte(doc), 0o600) }

// writeByRename replaces the file, as most editors and AddPeer do.
func writeByRename(path, doc string) error {
	tmp := path + ".swp"
	if err := os.WriteFile(tmp, []byte(doc), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func TestConfigSourceFollowsTheFile(t *testing.T) {
	for _, notify := range []bool{true, false} {
		name := "fsnotify"
		if !notify {
			name = "poll only"
		}
		t.Run(name, func(t *testing.T) { followEdits(t, notify) })
	}
}

func followEdits(t *testing.T, notify bool) {
	path, cfg := fileConfig(t)
	orig, _ := os.ReadFile(path)
	var logs logBuffer
	level := new(slog.LevelVar)
	s := newConfigSource(cfg, logs.logger(), level)
	s.poll, s.debounce, s.notify = 50*time.Millisecond, 20*time.Millisecond, notify
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	sub := s.Subscribe(ctx)
	if got := <-sub; got != cfg {
		t.Fatalf("first config from Subscribe is %p, want the current %p", got, cfg)
	}
	done := make(chan struct{})
	go func() { defer close(done); s.watch(ctx) }()
	defer func() { cancel(); <-done }()

	nas, phone := peerTable("nas", nasKey, "nas.lan:7741"), peerTable("phone", phoneKey, "")
	badLine := strings.Count(string(orig)+nas+phone, "\n") + 3 // the key line of the table below
	steps := []struct {
		name      string
		write     func(path, doc string) error
		doc       string
		wantPeers []string
		wantLog   string      // waited for when set
		until     func() bool // waited for when set
	}{
		{"in-place write adds a peer", writeInPlace, string(orig) + nas, []string{"nas"}, "", nil},
		{"rename-replace adds another", writeByRename, string(orig) + nas + phone, []string{"nas", "phone"}, "", nil},
		{"broken edit is logged and ignored", writeInPlace, string(orig) + nas + phone + "[[peer]]\nname = \"bad\"\nkey = \"xyz\"\n",
			[]string{"nas", "phone"}, fmt.Sprintf("config.toml:%d: peer.bad.key: not a peer key", badLine), nil},
		{"repaired, with a restart-only change", writeByRename,
			strings.Replace(string(orig), `listen = "127.0.0.1:7741"`, `listen = "127.0.0.1:7743"`, 1) + phone,
			[]string{"phone"}, `restart the daemon to apply this config change" field=listen`, nil},
		{"log level applies live", writeInPlace,
			strings.Replace(string(orig), `level = "info"`, `level = "debug"`, 1) + phone, []string{"phone"}, "",
			func() bool { return level.Level() == slog.LevelDebug }},
	}
	for _, st := range steps {
		if err := st.write(path, st.doc); err != nil {
			t.Fatal(err)
		}
		if st.wantLog != "" {
			waitFor(t, 5*time.Second, st.name+": log lacks "+st.wantLog+":\n"+logs.String(),
				func() bool { return strings.Contains(logs.String(), st.wantLog) })
		}
		if st.until != nil {
			waitFor(t, 5*time.Second, st.name, st.until)
		}
		waitFor(t, 5*time.Second, st.name+": peers are not "+strings.Join(st.wantPeers, ","),
			func() bool { return slices.Equal(names(s.Peers()), st.wantPeers) })
	}
	cur := s.Current()
	if cur.Listen != cfg.Listen || level.Level() != slog.LevelDebug {
		t.Errorf("listen %q (want the running %q), level %v (want debug)", cur.Listen, cfg.Listen, level.Level())
	}
	if n := strings.Count(logs.String(), "field=listen"); n != 1 {
		t.Errorf("restart note for listen logged %d times, want once:\n%s", n, logs.String())
	}
	var last *config.Config
	for len(sub) > 0 {
		last = <-sub
	}
	if last != nil && last != cur {
		t.Errorf("the subscriber's latest config is not the current one")
	}
}

func TestEffectiveConfig(t *testing.T) {
	start := &config.Config{Name: "laptop", Listen: "0.0.0.0:1", Arenas: []config.Arena{
		{Name: "docs", Dir: "/d", Peers: []string{"nas"}}, {Name: "photos", Dir: "/p"}}}
	nas := config.Peer{Name: "nas", Key: realize.PeerID{1}}
	tests := []struct {
		name        string
		next        config.Config
		wantRestart []string
		wantDocs    []string // docs' peers list in force
		wantGuard   float64  // docs' delete guard in force
		wantArenas  int
	}{
		{"peers, arena peers and delete guards are live", config.Config{Name: "laptop", Listen: "0.0.0.0:1", Peers: []config.Peer{nas},
			Arenas: []config.Arena{{Name: "docs", Dir: "/d", DeleteGuard: 20}, {Name: "photos", Dir: "/p", Peers: []string{"nas"}}}},
			nil, nil, 20, 2},
		{"history settings are live", config.Config{Name: "laptop", Listen: "0.0.0.0:1",
			History: config.History{AuditKeep: time.Hour, InactiveAfter: 2 * time.Hour},
			Arenas:  []config.Arena{{Name: "docs", Dir: "/d", Peers: []string{"nas"}}, {Name: "photos", Dir: "/p"}}},
			nil, []string{"nas"}, 0, 2},
		{"the rest needs a restart", config.Config{Name: "desk", Listen: "", NFS: "x:1", Arenas: []config.Arena{
			{Name: "docs", Dir: "/elsewhere", Peers: []string{"nas"}}, {Name: "music", Dir: "/m"}}},
			[]string{"name", "listen", "nfs", "arena.docs", "arena.music", "arena.photos"}, []string{"nas"}, 0, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newConfigSource(start, quiet(), nil)
			if got := restartFields(start, &tt.next); !slices.Equal(got, tt.wantRestart) {
				t.Errorf("restart fields %v, want %v", got, tt.wantRestart)
			}
			eff := s.effective(&tt.next)
			docs, _ := eff.Arena("docs")
			if len(eff.Arenas) != tt.wantArenas || docs == nil || !slices.Equal(docs.Peers, tt.wantDocs) || docs.DeleteGuard != tt.wantGuard ||
				eff.Name != start.Name || eff.Listen != start.Listen || len(eff.Peers) != len(tt.next.Peers) {
				t.Errorf("effective config %+v", eff)
			}
			if eff.History != tt.next.History {
				t.Errorf("history settings in force %+v, want %+v", eff.History, tt.next.History)
			}
			if !slices.Equal(start.Arenas[0].Peers, []string{"nas"}) {
				t.Errorf("the startup config was modified: %+v", start.Arenas)
			}
		})
	}
}

func TestSubscribeClosesWithItsContext(t *testing.T) {
	_, cfg := fileConfig(t)
	s := newConfigSource(cfg, quiet(), nil)
	ctx, cancel := context.WithCancel(t.Context())
	sub := s.Subscribe(ctx)
	<-sub
	cancel()
	select {
	case _, ok := <-sub:
		if ok {
			t.Fatal("got a config after cancel")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("channel not closed 5s after cancel")
	}
	next := *cfg
	next.Peers = []config.Peer{{Name: "nas", Key: realize.PeerID{1}}}
	s.apply(&next) // must not send on the closed channel
	if len(s.Peers()) != 1 {
		t.Errorf("peers %+v", s.Peers())
	}
}

func TestRunFollowsConfigFile(t *testing.T) {
	path, cfg := fileConfig(t)
	var logs logBuffer
	level := new(slog.LevelVar)
	ctx, cancel := context.WithCancel(t.Context())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, logs.logger(), Options{LogLevel: level, Ready: func(s string) { ready <- s }})
	}()
	defer func() { cancel(); <-done }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("not ready after 10s")
	}
	other, err := household.NewIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := config.AddPeer(path, config.Peer{Name: "nas", Key: other.ID(), Address: "nas.lan:7741"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the daemon did not reload the config:\n"+logs.String(),
		func() bool {
			return strings.Contains(logs.String(), `msg="config reloaded"`) && strings.Contains(logs.String(), "peers=1")
		})
}
