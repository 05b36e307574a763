package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/realizefs/realize/internal/config"
)

const (
	nasKey   = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	phoneKey = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
)

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// mustRun runs the CLI and fails the test unless it exits 0.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, errs, code := runCLI(t, nil, args...)
	if code != 0 {
		t.Fatalf("%v: exit %d\n%s%s", args, code, out, errs)
	}
	return out
}

func TestPeerAddListRemove(t *testing.T) {
	_, cfg := initPeer(t, "--name", "laptop")
	doc0 := readFile(t, cfg)

	out := mustRun(t, "--config", cfg, "peer", "add", "nas", nasKey, "nas.lan:7741")
	if !strings.Contains(out, `Added peer "nas"`) || !strings.Contains(out, cfg) {
		t.Errorf("add said %q", out)
	}
	docNas := readFile(t, cfg)
	// A key pasted with a newline and in capitals is the same key.
	out = mustRun(t, "--config", cfg, "peer", "add", "--json", "phone", strings.ToUpper(phoneKey)+"\n")
	var added map[string]string
	if err := json.Unmarshal([]byte(out), &added); err != nil {
		t.Fatalf("add --json printed %q: %v", out, err)
	}
	if want := map[string]string{"name": "phone", "key": phoneKey, "address": "", "config": cfg}; !reflect.DeepEqual(added, want) {
		t.Errorf("add --json = %v, want %v", added, want)
	}
	docBoth := readFile(t, cfg)
	if !strings.HasPrefix(docNas, doc0) || !strings.HasPrefix(docBoth, docNas) {
		t.Fatalf("add changed text before its table:\n%s", docBoth)
	}

	out = mustRun(t, "--config", cfg, "peer", "list")
	for _, want := range []string{"NAME", "nas", "01234567…", "nas.lan:7741", "phone", "fedcba98…", "(deaf)"} {
		if !strings.Contains(out, want) {
			t.Errorf("list lacks %q:\n%s", want, out)
		}
	}
	wantList := []peerJSON{}
	for _, p := range []struct{ name, key, addr string }{{"nas", nasKey, "nas.lan:7741"}, {"phone", phoneKey, ""}} {
		var pj peerJSON
		if err := pj.Key.UnmarshalText([]byte(p.key)); err != nil {
			t.Fatal(err)
		}
		pj.Name, pj.Address = p.name, p.addr
		wantList = append(wantList, pj)
	}
	if got := listJSON(t, cfg); !reflect.DeepEqual(got, wantList) {
		t.Errorf("list --json = %+v, want %+v", got, wantList)
	}

	// Removing nas takes out exactly its table: every other byte stays.
	mustRun(t, "--config", cfg, "peer", "remove", "nas")
	if got, want := readFile(t, cfg), doc0+docBoth[len(docNas):]; got != want {
		t.Errorf("after remove nas:\n%s\nwant:\n%s", got, want)
	}
	mustRun(t, "--config", cfg, "peer", "remove", "phone")
	if got := readFile(t, cfg); got != doc0 {
		t.Errorf("add, add, remove, remove did not give back the file:\n%s\nwant:\n%s", got, doc0)
	}
	if got := listJSON(t, cfg); got == nil || len(got) != 0 {
		t.Errorf("list --json with no peers = %#v, want []", got)
	}
}

func listJSON(t *testing.T, cfg string) []peerJSON {
	t.Helper()
	out := mustRun(t, "--config", cfg, "peer", "list", "--json")
	var got []peerJSON
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("list --json printed %q: %v", out, err)
	}
	return got
}

func TestPeerFailures(t *testing.T) {
	dir, cfg := initPeer(t, "--name", "laptop")
	mustRun(t, "--config", cfg, "peer", "add", "nas", nasKey, "nas.lan:7741")
	self := strings.TrimSpace(mustRun(t, "--config", cfg, "id"))
	shared := filepath.Join(dir, "shared.toml")
	doc := strings.Replace(readFile(t, cfg), "peers = []", `peers = ["nas"]`, 1)
	if err := os.WriteFile(shared, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(dir, "broken.toml")
	if err := os.WriteFile(broken, []byte(readFile(t, cfg)+"[[peer]]\nname = \"x\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"not hex", []string{"--config", cfg, "peer", "add", "phone", "not-a-key"}, `"not-a-key" is not a peer key`},
		{"short key", []string{"--config", cfg, "peer", "add", "phone", nasKey[:60]}, "64 hex digits"},
		{"duplicate name", []string{"--config", cfg, "peer", "add", "nas", phoneKey}, `a peer is already called "nas"`},
		{"duplicate key", []string{"--config", cfg, "peer", "add", "nas2", nasKey}, `peer "nas" already has key 01234567`},
		{"own key", []string{"--config", cfg, "peer", "add", "me", self}, "this peer's own key"},
		{"own name", []string{"--config", cfg, "peer", "add", "laptop", phoneKey}, `"laptop" is this peer's own name`},
		{"no port", []string{"--config", cfg, "peer", "add", "phone", phoneKey, "phone.lan"}, "not HOST:PORT"},
		{"port 0", []string{"--config", cfg, "peer", "add", "phone", phoneKey, "phone.lan:0"}, "from 1 to 65535"},
		{"unknown name", []string{"--config", cfg, "peer", "remove", "tablet"}, `no peer is called "tablet"`},
		{"named by an arena", []string{"--config", shared, "peer", "remove", "nas"}, "peers list of arena home (" + shared + ":"},
		{"broken config", []string{"--config", broken, "peer", "add", "phone", phoneKey}, broken + ":"},
		{"broken config, list", []string{"--config", broken, "peer", "list"}, "peer.x.key: required"},
		{"no config", []string{"--config", filepath.Join(dir, "none.toml"), "peer", "list"}, "realize init"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := tt.args[1]
			before, _ := os.ReadFile(file)
			out, errs, code := runCLI(t, nil, tt.args...)
			if code != 1 || !strings.HasPrefix(errs, "realize: ") || !strings.Contains(errs, tt.want) || out != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 1 mentioning %q", code, out, errs, tt.want)
			}
			if after, _ := os.ReadFile(file); string(after) != string(before) {
				t.Errorf("a failed command changed %s", file)
			}
		})
	}
	if c, err := config.Load(cfg); err != nil || len(c.Peers) != 1 {
		t.Errorf("config after the failures: %+v %v", c, err)
	}
}

func TestPeerUsage(t *testing.T) {
	_, cfg := initPeer(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no subcommand", []string{"peer"}, "want add, list or remove"},
		{"unknown subcommand", []string{"peer", "rename"}, `unknown command "rename"`},
		{"add without args", []string{"peer", "add"}, "want NAME KEY [HOST:PORT], got 0"},
		{"add without key", []string{"peer", "add", "nas"}, "want NAME KEY [HOST:PORT], got 1"},
		{"add with too many", []string{"peer", "add", "nas", nasKey, "nas:1", "extra"}, "got 4"},
		{"remove without name", []string{"peer", "remove"}, "want one NAME, got 0"},
		{"remove two", []string{"peer", "remove", "a", "b"}, "want one NAME, got 2"},
		{"list with an argument", []string{"peer", "list", "nas"}, `unexpected argument "nas"`},
		{"unknown flag", []string{"peer", "add", "--force", "nas", nasKey}, "flag provided but not defined"},
	}
	before := readFile(t, cfg)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errs, code := runCLI(t, nil, append([]string{"--config", cfg}, tt.args...)...)
			if code != 2 || !strings.Contains(errs, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit 2 mentioning %q", code, errs, tt.want)
			}
		})
	}
	if readFile(t, cfg) != before {
		t.Error("bad usage changed the config")
	}
}
