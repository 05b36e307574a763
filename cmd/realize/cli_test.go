package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/realizefs/realize/household"
	"github.com/realizefs/realize/internal/config"
)

// runCLI runs the CLI in-process with env vars vars and returns stdout,
// stderr and the exit status.
func runCLI(t *testing.T, vars map[string]string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	e := testEnv(t, &out, &errb, func(k string) string { return vars[k] })
	code := run(t.Context(), e, append([]string{"realize"}, args...))
	return out.String(), errb.String(), code
}

// testEnv is the env of an in-process run: not root, and a command the
// CLI would run with privileges fails the test instead of running.
func testEnv(t *testing.T, stdout, stderr io.Writer, getenv func(string) string) *env {
	return &env{stdout: stdout, stderr: stderr, getenv: getenv, now: time.Now, rand: rand.Reader,
		geteuid: func() int { return 1000 },
		runPriv: func(_ context.Context, argv []string) ([]byte, error) {
			t.Errorf("the CLI ran %q", argv)
			return nil, errors.New("not in tests")
		}}
}

// initPeer runs a successful init in a fresh directory and returns it and
// the config path.
func initPeer(t *testing.T, extra ...string) (string, string) {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.toml")
	args := append([]string{"--config", cfg, "init", "--data", filepath.Join(dir, "data"), "--arena", "home=" + filepath.Join(dir, "home")}, extra...)
	if out, errs, code := runCLI(t, nil, args...); code != 0 {
		t.Fatalf("init: exit %d\n%s%s", code, out, errs)
	}
	return dir, cfg
}

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}\n$`)

func TestInitWritesConfigAndKey(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "conf", "c.toml")
	data := filepath.Join(dir, "data")
	out, errs, code := runCLI(t, nil, "--config", cfgPath, "init", "--name", "laptop", "--data", data,
		"--arena", "docs="+filepath.Join(dir, "docs"), "--arena", "photos="+filepath.Join(dir, "p, with comma"),
		"--listen", "127.0.0.1:9000", "--nfs", "127.0.0.1:9001")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatalf("written config does not load: %v", err)
	}
	if cfg.Name != "laptop" || cfg.Data != data || cfg.Listen != "127.0.0.1:9000" || cfg.NFS != "127.0.0.1:9001" || len(cfg.Arenas) != 2 ||
		cfg.Arenas[1].Dir != filepath.Join(dir, "p, with comma") || cfg.Arenas[0].Pin {
		t.Errorf("config: %+v", cfg)
	}
	modes := map[string]os.FileMode{household.KeyPath(data): 0o600, data: 0o700 | os.ModeDir, filepath.Join(dir, "docs"): 0o755 | os.ModeDir}
	for p, want := range modes {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), want)
		}
	}
	id, err := household.LoadIdentity(household.KeyPath(data))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{id.ID().String(), cfgPath, household.KeyPath(data), "(created)"} {
		if !strings.Contains(out, want) {
			t.Errorf("init output lacks %q:\n%s", want, out)
		}
	}
	doc, _ := os.ReadFile(cfgPath)
	if strings.Count(string(doc), "#") < 30 {
		t.Errorf("config is not commented:\n%s", doc)
	}

	// Refuses to overwrite, and leaves the file alone.
	_, errs, code = runCLI(t, nil, "--config", cfgPath, "init", "--name", "other", "--data", data)
	if code != 1 || !strings.Contains(errs, "already exists") || !strings.Contains(errs, cfgPath) {
		t.Errorf("second init: exit %d, stderr %q", code, errs)
	}
	if again, _ := os.ReadFile(cfgPath); !bytes.Equal(again, doc) {
		t.Error("second init changed the config")
	}
}

func TestInitKeepsExistingKeyAndJSON(t *testing.T) {
	dir, cfg := initPeer(t)
	first, _, _ := runCLI(t, nil, "--config", cfg, "id")
	os.Remove(cfg)
	out, errs, code := runCLI(t, nil, "--config", cfg, "init", "--json", "--deaf", "--data", filepath.Join(dir, "data"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var res struct {
		Peer       string `json:"peer"`
		KeyCreated bool   `json:"key_created"`
		Listen     string `json:"listen"`
		Config     string `json:"config"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("--json output %q: %v", out, err)
	}
	if res.Peer+"\n" != first || res.KeyCreated || res.Listen != "" || res.Config != cfg {
		t.Errorf("got %+v, want the existing key %s kept and a deaf peer", res, first)
	}
	c, err := config.Load(cfg)
	if err != nil || c.Listen != "" {
		t.Errorf("deaf config: %+v %v", c, err)
	}
}

func TestUsageErrors(t *testing.T) {
	dir, cfg := initPeer(t)
	data := filepath.Join(dir, "data2")
	fresh := filepath.Join(dir, "new.toml")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"no command", nil, "no command given"},
		{"unknown flag", []string{"--config", cfg, "status", "--verbose"}, "flag provided but not defined"},
		{"arena without dir", []string{"--config", fresh, "init", "--data", data, "--arena", "docs"}, "want NAME=DIR"},
		{"bad arena name", []string{"--config", fresh, "init", "--data", data, "--arena", "My Docs=/tmp/x"}, "arena names are"},
		{"duplicate arena", []string{"--config", fresh, "init", "--data", data, "--arena", "a=" + dir + "/a", "--arena", "a=" + dir + "/b"}, "given twice"},
		{"arena in data", []string{"--config", fresh, "init", "--data", data, "--arena", "a=" + data + "/a"}, "inside the data directory"},
		{"deaf and listen", []string{"--config", fresh, "init", "--data", data, "--deaf", "--listen", "0.0.0.0:1"}, "contradict"},
		{"extra argument", []string{"--config", cfg, "id", "extra"}, `unexpected argument "extra"`},
		{"bad since", []string{"--config", cfg, "log", "--since", "last tuesday"}, "--since"},
		{"bad log level", []string{"--config", cfg, "daemon", "--log-level", "loud"}, "--log-level"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errs, code := runCLI(t, nil, tt.args...)
			if code != 2 || !strings.Contains(errs, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit 2 mentioning %q", code, errs, tt.want)
			}
		})
	}
	if _, err := os.Stat(fresh); err == nil {
		t.Error("a refused init wrote a config")
	}
}

func TestID(t *testing.T) {
	dir, cfg := initPeer(t)
	out, errs, code := runCLI(t, nil, "--config", cfg, "id")
	if code != 0 || !hex64.MatchString(out) {
		t.Fatalf("id: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	id, _ := household.LoadIdentity(household.KeyPath(filepath.Join(dir, "data")))
	if out != id.ID().String()+"\n" {
		t.Errorf("id printed %q, key is %s", out, id.ID())
	}
	// REALIZE_CONFIG works, and --config wins over it.
	env := map[string]string{config.EnvVar: cfg}
	if got, _, code := runCLI(t, env, "id"); code != 0 || got != out {
		t.Errorf("with %s: exit %d, %q", config.EnvVar, code, got)
	}
	env[config.EnvVar] = filepath.Join(dir, "nope.toml")
	if got, _, code := runCLI(t, env, "--config", cfg, "id"); code != 0 || got != out {
		t.Errorf("--config did not win over %s: exit %d, %q", config.EnvVar, code, got)
	}
	if _, errs, code := runCLI(t, env, "id"); code != 1 || !strings.Contains(errs, "nope.toml") || !strings.Contains(errs, "realize init") {
		t.Errorf("missing config: exit %d, %q", code, errs)
	}
	os.Chmod(household.KeyPath(filepath.Join(dir, "data")), 0o644)
	if _, errs, code := runCLI(t, nil, "--config", cfg, "id"); code != 1 || !strings.Contains(errs, "too open") {
		t.Errorf("world-readable key: exit %d, %q", code, errs)
	}
}

func TestBrokenConfig(t *testing.T) {
	_, cfg := initPeer(t)
	doc, _ := os.ReadFile(cfg)
	tests := []struct {
		name string
		doc  string
		want string
	}{
		{"garbage", "\x00\x01garbage ]]]\n", cfg + ":1: "},
		{"typo", strings.Replace(string(doc), "\nrescan = ", "\nrescann = ", 1), ": scan.rescann: unknown key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(cfg, []byte(tt.doc), 0o600); err != nil {
				t.Fatal(err)
			}
			for _, cmd := range []string{"id", "status", "daemon", "log"} {
				_, errs, code := runCLI(t, nil, "--config", cfg, cmd)
				if code != 1 || !strings.Contains(errs, tt.want) {
					t.Errorf("%s: exit %d, stderr %q; want exit 1 mentioning %q", cmd, code, errs, tt.want)
				}
			}
		})
	}
}

func TestStatusDaemonDown(t *testing.T) {
	_, cfg := initPeer(t)
	out, errs, code := runCLI(t, nil, "--config", cfg, "status")
	if code != 1 || !strings.Contains(errs, "daemon is not running") || out != "" {
		t.Errorf("status: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	out, errs, code = runCLI(t, nil, "--config", cfg, "status", "--json")
	var rep struct {
		Daemon struct {
			Running bool   `json:"running"`
			Peer    string `json:"peer"`
		} `json:"daemon"`
		Arenas []struct{ Name string } `json:"arenas"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 1 || rep.Daemon.Running || len(rep.Daemon.Peer) != 64 || len(rep.Arenas) != 1 {
		t.Errorf("status --json: exit %d, stdout %q (%v), stderr %q", code, out, err, errs)
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"2026-01-02T15:04:05Z", time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC), true},
		{"2026-01-02", time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC), true},
		{"2h", now.Add(-2 * time.Hour), true},
		{"7d", now.Add(-7 * 24 * time.Hour), true},
		{"yesterday", time.Time{}, false},
		{"2026-13-40", time.Time{}, false},
	}
	for _, tt := range tests {
		got, err := parseSince(tt.in, now)
		if (err == nil) != tt.ok || !got.Equal(tt.want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 999: "999 B", 1000: "1.0 kB", 1_500_000: "1.5 MB", 50e9: "50.0 GB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
