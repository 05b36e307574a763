package daemon

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/household"
	"github.com/realizefs/realize/internal/config"
	"github.com/realizefs/realize/internal/control"
)

func testConfig(t *testing.T) *config.Config {
	t.Helper()
	dir, err := os.MkdirTemp("", "rzd") // short: the socket path must fit
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	data := filepath.Join(dir, "data")
	arena := filepath.Join(dir, "docs")
	for _, d := range []string{data, arena} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	id, err := household.NewIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := id.Save(household.KeyPath(data)); err != nil {
		t.Fatal(err)
	}
	return &config.Config{Name: "test", Data: data, Arenas: []config.Arena{{Name: "docs", Dir: arena}}}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// runDaemon runs a daemon in-process until stop (or the test's end) and
// returns its control socket once it answers. stop shuts it down and
// returns Run's error; it fails the test if that takes over 5 s.
func runDaemon(t *testing.T, cfg *config.Config, version string) (socket string, stop func() error) {
	t.Helper()
	return runDaemonWith(t, cfg, Options{Version: version})
}

// runDaemonWith is runDaemon with more options (opt.Ready is set here).
func runDaemonWith(t *testing.T, cfg *config.Config, opt Options) (socket string, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		opt.Ready = func(s string) { ready <- s }
		done <- Run(ctx, cfg, quiet(), opt)
	}()
	select {
	case socket = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("daemon not ready after 10s")
	}
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(5 * time.Second):
				err = errors.New("no shutdown within 5s")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return socket, stop
}

func TestRunStatusSecondDaemonShutdown(t *testing.T) {
	cfg := testConfig(t)
	socket, stop := runDaemon(t, cfg, "test")

	c := control.NewClient(socket)
	defer c.Close()
	rep, err := c.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if d := rep.Daemon; !d.Running || d.PID != os.Getpid() || d.Name != "test" || d.DataDir != cfg.Data || d.Peer.IsZero() || d.Started.IsZero() {
		t.Errorf("daemon status %+v", d)
	}
	if len(rep.Arenas) != 1 || rep.Arenas[0].Name != "docs" {
		t.Errorf("arenas %+v", rep.Arenas)
	}
	pid, err := os.ReadFile(filepath.Join(cfg.Data, PIDFile))
	if err != nil || strings.TrimSpace(string(pid)) == "" {
		t.Errorf("pid file: %q %v", pid, err)
	}

	// A second daemon on the same data directory is refused by the lock,
	// and leaves the first one's socket and pid file alone.
	err = Run(t.Context(), cfg, quiet(), Options{})
	if realize.KindOf(err) != realize.Busy || !strings.Contains(err.Error(), "data directory is in use") {
		t.Fatalf("second daemon: %v (kind %v)", err, realize.KindOf(err))
	}
	if _, err := c.Status(t.Context()); err != nil {
		t.Fatalf("first daemon hurt by the second: %v", err)
	}

	if err := stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	for _, p := range []string{socket, filepath.Join(cfg.Data, PIDFile)} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left behind (%v)", p, err)
		}
	}
	if _, err := c.Status(t.Context()); realize.KindOf(err) != realize.Unavailable {
		t.Errorf("status after stop: %v", err)
	}
}

func TestRunWithoutKey(t *testing.T) {
	cfg := testConfig(t)
	os.Remove(household.KeyPath(cfg.Data))
	err := Run(t.Context(), cfg, quiet(), Options{})
	if realize.KindOf(err) != realize.NotExist || !strings.Contains(err.Error(), "realize init") {
		t.Fatalf("got %v", err)
	}
}

func TestStaleSocketDoesNotBlock(t *testing.T) {
	cfg := testConfig(t)
	sock := control.SocketPath(cfg.Data)
	if err := os.MkdirAll(filepath.Dir(sock), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sock, nil, 0o600); err != nil { // left by a kill -9
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, quiet(), Options{Ready: func(s string) { ready <- s }}) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run with a stale socket: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("not ready")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
