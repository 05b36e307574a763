package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/realizefs/realize"
)

const key1 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
const key2 = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"

// setup makes a directory with a data dir and two arena dirs, and returns
// it and a writer of config files inside it.
func setup(t *testing.T) (string, func(doc string) string) {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"data", "docs", "photos", "docs/sub"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir, func(doc string) string {
		p := filepath.Join(dir, "config.toml")
		if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
}

const head = "name = \"laptop\"\ndata = \"data\"\n" // lines 1-2

func TestLoadGood(t *testing.T) {
	dir, write := setup(t)
	doc := head + `listen = ""
nfs = "127.0.0.1:9999"
metrics = "127.0.0.1:9998"
[log]
level = "debug"
format = "json"
[scan]
rescan = "1m"
debounce = "50ms"
hash_workers = 3
[history]
audit_keep = "30d"
inactive_after = "48h"
[cache]
max = "50GB"
leave = "512MiB"
[[arena]]
name = "docs"
dir = "docs"
pin = true
peers = ["nas"]
delete_guard = "12.5%"
[[arena]]
name = "photos"
dir = "` + filepath.Join(dir, "photos") + `"
[[peer]]
name = "nas"
key = "` + key1 + `"
address = "nas.lan:7741"
[[peer]]
name = "phone"
key = "` + key2 + `"
`
	c, err := Load(write(doc))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"data":     filepath.Join(dir, "data"),
		"listen":   "",
		"nfs":      "127.0.0.1:9999",
		"metrics":  "127.0.0.1:9998",
		"level":    "DEBUG",
		"format":   "json",
		"rescan":   time.Minute,
		"debounce": 50 * time.Millisecond,
		"workers":  3,
		"audit":    30 * 24 * time.Hour,
		"inactive": 48 * time.Hour,
		"max":      Size{Bytes: 50e9},
		"leave":    Size{Bytes: 512 << 20},
		"arenas":   2,
		"docsdir":  filepath.Join(dir, "docs"),
		"docspin":  true,
		"guard":    12.5,
		"photosgd": DefaultDeleteGuard,
		"shared":   true,
		"unshared": false,
		"peerkey":  key1,
		"deaf":     "",
	}
	docs, _ := c.Arena("docs")
	photos, _ := c.Arena("photos")
	nas, _ := c.Peer("nas")
	phone, _ := c.Peer("phone")
	got := map[string]any{
		"data": c.Data, "listen": c.Listen, "nfs": c.NFS, "metrics": c.Metrics, "level": c.Log.Level.String(), "format": c.Log.Format,
		"rescan": c.Scan.Rescan, "debounce": c.Scan.Debounce, "workers": c.Scan.HashWorkers,
		"audit": c.History.AuditKeep, "inactive": c.History.InactiveAfter,
		"max": c.Cache.Max, "leave": c.Cache.Leave, "arenas": len(c.Arenas),
		"docsdir": docs.Dir, "docspin": docs.Pin, "guard": docs.DeleteGuard, "photosgd": photos.DeleteGuard, "shared": docs.SharedWith("nas"), "unshared": docs.SharedWith("phone"),
		"peerkey": nas.Key.String(), "deaf": phone.Address,
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %v, want %v", k, got[k], w)
		}
	}
}

func TestLoadDefaults(t *testing.T) {
	_, write := setup(t)
	c, err := Load(write(head))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != DefaultListen || c.NFS != DefaultNFS || c.Metrics != "" || c.Scan.Rescan != DefaultRescan ||
		c.Scan.HashWorkers < 1 || c.Cache.Max != (Size{Percent: 10}) || c.Cache.Leave != (Size{Bytes: 5e9}) || c.Log.Format != "text" {
		t.Errorf("defaults not applied: %+v", c)
	}
}

func TestLoadErrors(t *testing.T) {
	dir, write := setup(t)
	missing := filepath.Join(dir, "nope")
	tests := []struct {
		name, doc string
		want      string // expected message after "<file>:"
	}{
		{"garbage", "this is not toml\n", `1: expected '=' after key`},
		{"unknown top key", head + "lisen = \"x:1\"\n", `3: lisen: unknown key`},
		{"unknown table", head + "[lgo]\nlevel = \"info\"\n", `3: lgo: unknown key`},
		{"unknown arena key", head + "[[arena]]\nname = \"docs\"\ndri = \"docs\"\n", `5: arena.docs.dri: unknown key`},
		{"wrong type", head + "[scan]\nhash_workers = \"4\"\n", `4: scan.hash_workers: wrong type: a TOML string where an integer is expected`},
		{"bad duration", head + "[scan]\nrescan = \"5 minutes\"\n", `4: scan.rescan: bad duration "5 minutes"`},
		{"short rescan", head + "[scan]\nrescan = \"10ms\"\n", `4: scan.rescan: 10ms is too short`},
		{"no inactive_after", head + "[history]\ninactive_after = \"0\"\n", `4: history.inactive_after: 0s is too short`},
		{"bad size", head + "[cache]\nmax = \"10 parsecs\"\n", `4: cache.max: bad size "10 parsecs": unknown unit "parsecs"`},
		{"bad percent", head + "[cache]\n\nmax = \"110%\"\n", `5: cache.max: bad percentage "110%"`},
		{"bad level", head + "[log]\nlevel = \"loud\"\n", `4: log.level: "loud": want debug, info, warn or error`},
		{"bad format", head + "[log]\nformat = \"xml\"\n", `4: log.format: "xml": want text or json`},
		{"bad listen", head + "listen = \"nowhere\"\n", `3: listen: "nowhere" is not HOST:PORT`},
		{"bad port", head + "nfs = \"127.0.0.1:99999\"\n", `3: nfs: "127.0.0.1:99999": port must be`},
		{"metrics not loopback", head + "metrics = \"0.0.0.0:9100\"\n", `3: metrics: "0.0.0.0:9100": must be a loopback address (127.0.0.1:PORT): the metrics endpoint has no access control`},
		{"metrics no port", head + "metrics = \"127.0.0.1\"\n", `3: metrics: "127.0.0.1" is not HOST:PORT`},
		{"no name", "data = \"data\"\n", ` name: required`},
		{"no data", "name = \"x\"\n", ` data: required`},
		{"missing dir", head + "[[arena]]\nname = \"photos\"\ndir = \"" + missing + "\"\n", `5: arena.photos.dir: directory "` + missing + `" does not exist`},
		{"bad arena name", head + "[[arena]]\nname = \"My Photos\"\ndir = \"photos\"\n", `4: arena[0].name: "My Photos": arena names are`},
		{"dup arena", head + "[[arena]]\nname = \"docs\"\ndir = \"docs\"\n[[arena]]\nname = \"docs\"\ndir = \"photos\"\n", `7: arena.docs.name: another arena is already called "docs"`},
		{"nested arenas", head + "[[arena]]\nname = \"docs\"\ndir = \"docs\"\n[[arena]]\nname = \"sub\"\ndir = \"docs/sub\"\n", `8: arena.sub.dir: "` + filepath.Join(dir, "docs/sub") + `" overlaps arena.docs`},
		{"arena in data", head + "[[arena]]\nname = \"d\"\ndir = \"data\"\n", `5: arena.d.dir: "` + filepath.Join(dir, "data") + `" is inside the data directory`},
		{"arena no dir", head + "[[arena]]\nname = \"docs\"\n", `3: arena.docs.dir: required`},
		{"bad delete guard", head + "[[arena]]\nname = \"docs\"\ndir = \"docs\"\ndelete_guard = \"half\"\n", `6: arena.docs.delete_guard: "half": want a share`},
		{"delete guard over 100", head + "[[arena]]\nname = \"docs\"\ndir = \"docs\"\ndelete_guard = \"150%\"\n", `6: arena.docs.delete_guard: "150%"`},
		{"delete guard without %", head + "[[arena]]\nname = \"docs\"\ndir = \"docs\"\ndelete_guard = \"50\"\n", `6: arena.docs.delete_guard: "50": want a share`},
		{"delete guard not a string", head + "[[arena]]\nname = \"docs\"\ndir = \"docs\"\ndelete_guard = 50\n", `6: arena.docs.delete_guard: wrong type`},
		{"unknown arena peer", head + "[[arena]]\nname = \"docs\"\ndir = \"docs\"\npeers = [\"nas\"]\n", `6: arena.docs.peers: no [[peer]] is called "nas"`},
		{"bad peer key", head + "[[peer]]\nname = \"nas\"\nkey = \"abc\"\n", `5: peer.nas.key: not a peer key`},
		{"no peer key", head + "[[peer]]\nname = \"nas\"\n", `3: peer.nas.key: required`},
		{"dup peer", head + "[[peer]]\nname = \"nas\"\nkey = \"" + key1 + "\"\n[[peer]]\nname = \"nas\"\nkey = \"" + key2 + "\"\n", `7: peer.nas.name: another peer is already called "nas"`},
		{"dup key", head + "[[peer]]\nname = \"a\"\nkey = \"" + key1 + "\"\n[[peer]]\nname = \"b\"\nkey = \"" + key1 + "\"\n", `8: peer.b.key: same key as peer "a"`},
		{"bad peer address", head + "[[peer]]\nname = \"nas\"\nkey = \"" + key1 + "\"\naddress = \"nas\"\n", `6: peer.nas.address: "nas" is not HOST:PORT`},
		{"dup key in doc", head + "name = \"again\"\n", `3: name: key name is already defined`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := write(tt.doc)
			_, err := Load(file)
			if err == nil {
				t.Fatal("Load succeeded")
			}
			if realize.KindOf(err) != realize.Invalid {
				t.Errorf("kind %v, want Invalid", realize.KindOf(err))
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *config.Error", err)
			}
			if want := file + ":" + tt.want; !strings.Contains(ce.Error(), want) {
				t.Errorf("error:\n%s\nwant it to contain:\n%s", ce, want)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "none.toml"))
	if realize.KindOf(err) != realize.NotExist || !strings.Contains(err.Error(), "realize init") {
		t.Errorf("got %v (kind %v), want NotExist pointing at realize init", err, realize.KindOf(err))
	}
}

func TestRenderRoundTrip(t *testing.T) {
	dir, write := setup(t)
	for _, tt := range []Template{
		{Name: "laptop", Data: filepath.Join(dir, "data"), Listen: "0.0.0.0:7741", NFS: DefaultNFS,
			Arenas: []TemplateArena{{Name: "docs", Dir: filepath.Join(dir, "docs")}, {Name: "photos", Dir: filepath.Join(dir, "photos"), Pin: true}}},
		{Name: "odd \"name\" \\ é", Data: filepath.Join(dir, "data"), Listen: "", NFS: ""},
	} {
		doc, err := Render(tt)
		if err != nil {
			t.Fatal(err)
		}
		c, err := Load(write(string(doc)))
		if err != nil {
			t.Fatalf("rendered config does not load: %v\n%s", err, doc)
		}
		if c.Name != tt.Name || c.Data != tt.Data || c.Listen != tt.Listen || c.NFS != tt.NFS || len(c.Arenas) != len(tt.Arenas) {
			t.Errorf("round trip: got %+v from %+v", c, tt)
		}
		for i, a := range tt.Arenas {
			if got := c.Arenas[i]; string(got.Name) != a.Name || got.Dir != a.Dir || got.Pin != a.Pin || got.DeleteGuard != DefaultDeleteGuard {
				t.Errorf("arena %d: got %+v want %+v", i, got, a)
			}
		}
		// Every key line is preceded by a comment: the file explains itself.
		lines := strings.Split(string(doc), "\n")
		for i, l := range lines {
			if i > 0 && strings.Contains(l, " = ") && !strings.HasPrefix(l, "#") && !strings.HasPrefix(l, "name") &&
				!strings.HasPrefix(l, "dir") && !strings.HasPrefix(l, "pin") && !strings.HasPrefix(l, "peers") && !strings.HasPrefix(l, "delete_guard") &&
				!strings.HasPrefix(lines[i-1], "#") {
				t.Errorf("line %d %q has no comment above it", i+1, l)
			}
		}
	}
}

func TestParseShare(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want float64
		ok   bool
	}{
		{"50%", 50, true}, {" 12.5 % ", 12.5, true}, {"100%", 100, true}, {"0%", 0, true},
		{"off", 0, true}, {"0", 0, true},
		{"50", 0, false}, {"-1%", 0, false}, {"101%", 0, false}, {"NaN%", 0, false}, {"", 0, false}, {"on", 0, false},
	} {
		got, err := ParseShare(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseShare(%q) = %v, %v; want %v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
