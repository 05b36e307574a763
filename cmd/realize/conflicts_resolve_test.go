package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/realizefs/realize/internal/control"
)

func TestResolveBadUsage(t *testing.T) {
	dir, cfg := initPeer(t)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no path", []string{"resolve"}, 2, "want one PATH"},
		{"two paths", []string{"resolve", "home:a", "home:b"}, 2, "want one PATH"},
		{"both flags", []string{"resolve", "--keep", "abcd", "--keep-all-as-copies", "home:a"}, 2, "do not go together"},
		{"empty keep", []string{"resolve", "--keep", "", "home:a"}, 2, "needs a VERSION"},
		{"outside every arena", []string{"resolve", dir + "/elsewhere/a.txt"}, 1, "not inside any arena or mount"},
		{"no daemon", []string{"resolve", "home:a.txt"}, 1, "daemon is not running"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, errs, code := runCLI(t, nil, append([]string{"--config", cfg}, tc.args...)...)
			if code != tc.code || !strings.Contains(errs, tc.want) || out != "" {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d and %q", code, out, errs, tc.code, tc.want)
			}
			if first := strings.SplitN(errs, "\n", 2)[0]; strings.Count(first, "realize:") != 1 {
				t.Errorf("not one sentence: %q", errs)
			}
		})
	}
}

func TestResolveThroughDaemon(t *testing.T) {
	dir, cfg := initPeer(t)
	f := serveFake(t, cfg)
	f.resolved = make(chan control.ResolveRequest, 4)
	out, errs, code := runCLI(t, nil, "--config", cfg, "resolve", "--keep", "bbbbbbbb-222222222222", dir+"/home/doc.txt")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if req := <-f.resolved; req.Path != "home:doc.txt" || req.Keep != "bbbbbbbb-222222222222" || req.Copies {
		t.Errorf("request %+v", req)
	}
	if !strings.Contains(out, "resolved home:doc.txt: kept aaaaaaaa-111111111111 (alpha, file)") || !strings.Contains(out, "dropped bbbbbbbb-222222222222 (bravo") {
		t.Errorf("output:\n%s", out)
	}
	out, _, code = runCLI(t, nil, "--config", cfg, "resolve", "--keep-all-as-copies", "--json", "home:doc.txt")
	var rep control.ResolveReport
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || rep.Kept.Version == "" {
		t.Errorf("--json: exit %d, %q", code, out)
	}
	if req := <-f.resolved; !req.Copies || req.Keep != "" {
		t.Errorf("request %+v", req)
	}
	// An unknown version is the daemon's to say: one sentence, exit 1.
	_, errs, code = runCLI(t, nil, "--config", cfg, "resolve", "--keep", "nope", "home:doc.txt")
	if code != 1 || !strings.Contains(errs, `resolve home:doc.txt: no version "nope"`) {
		t.Errorf("unknown version: exit %d, %q", code, errs)
	}
}

func TestConflictsListsVersions(t *testing.T) {
	_, cfg := initPeer(t)
	serveFake(t, cfg)
	out, errs, code := runCLI(t, nil, "--config", cfg, "conflicts")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || lines[0] != "home:doc.txt" ||
		!strings.HasPrefix(lines[1], "  * aaaaaaaa-111111111111  alpha") || !strings.HasSuffix(lines[1], "2.0 kB  at the path, here") ||
		!strings.HasPrefix(lines[2], "    bbbbbbbb-222222222222  bravo") || !strings.HasSuffix(lines[2], "elsewhere") {
		t.Errorf("output:\n%s", out)
	}
	out, _, _ = runCLI(t, nil, "--config", cfg, "conflicts", "--json")
	var recs []map[string]any
	if err := json.Unmarshal([]byte(out), &recs); err != nil || len(recs) != 2 {
		t.Fatalf("--json %q: %v", out, err)
	}
	for _, k := range []string{"arena", "path", "version", "current", "origin", "kind", "hash", "size", "mtime", "local"} {
		if _, ok := recs[1][k]; !ok && k != "hash" {
			t.Errorf("JSON record lacks %q: %v", k, recs[1])
		}
	}
}
