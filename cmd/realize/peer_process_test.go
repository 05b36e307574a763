package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitOutput waits (bounded) until the process has printed want.
func waitOutput(t *testing.T, p *proc, limit time.Duration, want string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !strings.Contains(p.output(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v; output:\n%s", want, limit, p.output())
		}
		select {
		case <-p.exited:
			t.Fatalf("exited while waiting for %s:\n%s", want, p.output())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func TestProcessPeerAddReachesRunningDaemon(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.toml")
	if out, code := runBin(t, "--config", cfg, "init", "--name", "proc", "--data", filepath.Join(dir, "data"),
		"--arena", "home="+filepath.Join(dir, "home"), "--deaf"); code != 0 {
		t.Fatalf("init: exit %d\n%s", code, out)
	}
	daemon := start(t, "--config", cfg, "daemon", "--log-format", "json")
	waitOutput(t, daemon, 15*time.Second, `"msg":"daemon started"`)

	if out, code := runBin(t, "--config", cfg, "peer", "add", "nas", nasKey, "nas.lan:7741"); code != 0 {
		t.Fatalf("peer add: exit %d\n%s", code, out)
	}
	waitOutput(t, daemon, 10*time.Second, `"msg":"config reloaded","file":"`+cfg+`","peers":1`)

	// A broken hand edit is reported with its line and changes nothing.
	doc, _ := os.ReadFile(cfg)
	before, _, _ := strings.Cut(string(doc), `level = "info"`)
	line := strings.Count(before, "\n") + 1
	broken := strings.Replace(string(doc), `level = "info"`, `level = "loud"`, 1)
	if err := os.WriteFile(cfg, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, daemon, 10*time.Second, fmt.Sprintf(`%s:%d: log.level: \"loud\": want debug, info, warn or error`, cfg, line))

	daemon.cmd.Process.Signal(syscall.SIGTERM)
	if code := daemon.wait(t, 5*time.Second); code != 0 {
		t.Fatalf("daemon exit %d after SIGTERM:\n%s", code, daemon.output())
	}
}
