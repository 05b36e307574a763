package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// conflictRec is the part of `realize conflicts --json` the tests read.
type conflictRec struct {
	Arena   string `json:"arena"`
	Path    string `json:"path"`
	Version string `json:"version"`
	Current bool   `json:"current"`
	Local   bool   `json:"local"`
}

func (p *peer) conflicts() []conflictRec {
	p.t.Helper()
	var recs []conflictRec
	if err := json.Unmarshal([]byte(p.mustRun("conflicts", "--json")), &recs); err != nil {
		p.t.Fatal(err)
	}
	return recs
}

// versionsOf returns p's versions of path: the current one, and the
// others.
func versionsOf(p *peer, path string) (cur string, others []string) {
	for _, r := range p.conflicts() {
		switch {
		case r.Path != path:
		case r.Current:
			cur = r.Version
		default:
			others = append(others, r.Version)
		}
	}
	return cur, others
}

// TestResolveConflicts: two real daemons make two conflicts. `realize
// resolve --keep` on A with the version B made clears the first on both
// peers and puts B's bytes at the path on both; deleting the version kept
// aside under conflicts/ through B's NFS export clears the second on both.
// Bad input gets one sentence and exit 1.
func TestResolveConflicts(t *testing.T) {
	a := newPeerWith(t, "alpha", freeAddr(t), "", true)
	nfsAddr := freeTCPAddr(t)
	b := newPeerWith(t, "bravo", freeAddr(t), nfsAddr, true)
	introduce(a, b)
	introduce(b, a)
	// Before the peers meet: concurrent versions, conflicts once they do.
	content := map[*peer]map[string][]byte{a: {}, b: {}}
	for _, p := range []*peer{a, b} {
		for _, name := range []string{"one.txt", "two.txt"} {
			c := []byte(p.name + "'s version of " + name + "\n")
			content[p][name] = c
			if err := os.WriteFile(filepath.Join(p.arena, name), c, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	a.start()
	b.start()
	for _, p := range []*peer{a, b} {
		p.waitFor("both conflicts on "+p.name, 30*time.Second, func() bool {
			n := 0
			for _, r := range p.conflicts() {
				if !r.Current {
					n++
				}
			}
			return n == 2
		})
	}

	// 1. realize resolve --keep the version that is not at the path.
	_, others := versionsOf(b, "one.txt")
	if len(others) != 1 {
		t.Fatalf("versions of one.txt kept aside: %v", others)
	}
	// The version kept aside is the other peer's.
	cur, _ := os.ReadFile(filepath.Join(a.arena, "one.txt"))
	want := content[a]["one.txt"]
	if string(cur) == string(want) {
		want = content[b]["one.txt"]
	}
	out := a.mustRun("resolve", "--keep", others[0], filepath.Join(a.arena, "one.txt"))
	if !strings.Contains(out, "resolved home:one.txt: kept "+others[0]) {
		t.Errorf("resolve output: %q", out)
	}
	for _, p := range []*peer{a, b} {
		waitFile(t, p, "one.txt", want, 20*time.Second)
		p.waitFor("one.txt resolved on "+p.name, 20*time.Second, func() bool {
			cur, others := versionsOf(p, "one.txt")
			return cur == "" && len(others) == 0
		})
	}

	// Bad input: one sentence, exit 1.
	bad := []struct {
		args []string
		want string
	}{
		{[]string{"resolve", "--keep", "0123abcd", "home:two.txt"}, `no version "0123abcd"`},
		{[]string{"resolve", "home:one.txt"}, "no conflict at this path"},
		{[]string{"resolve", "home:nothing/here.txt"}, "no conflict at this path"},
		{[]string{"resolve", filepath.Join(t.TempDir(), "x.txt")}, "not inside any arena or mount"},
	}
	for _, tc := range bad {
		out, errs, code := a.run(tc.args...)
		if code != 1 || out != "" || !strings.Contains(errs, tc.want) || strings.Count(errs, "\n") != 1 {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 1 and one line with %q", tc.args, code, out, errs, tc.want)
		}
	}

	// 2. Delete the version of two.txt kept aside, under conflicts/ in the
	// NFS export of B.
	_, others = versionsOf(b, "two.txt")
	if len(others) != 1 {
		t.Fatalf("versions of two.txt kept aside: %v", others)
	}
	tg := nfsMount(t, nfsAddr, "/")
	ents, err := tg.ReadDirPlus("/conflicts/home/two.txt")
	if err != nil || len(ents) != 1 || ents[0].Name() != others[0]+".txt" {
		t.Fatalf("conflicts/home/two.txt lists %v (%v), want %s.txt", ents, err, others[0])
	}
	shown, _ := os.ReadFile(filepath.Join(b.arena, "two.txt"))
	if err := tg.Remove("/conflicts/home/two.txt/" + others[0] + ".txt"); err != nil {
		t.Fatalf("remove under conflicts/: %v", err)
	}
	for _, p := range []*peer{a, b} {
		p.waitFor("two.txt resolved on "+p.name, 20*time.Second, func() bool {
			return len(p.conflicts()) == 0
		})
		if got, _ := os.ReadFile(filepath.Join(p.arena, "two.txt")); string(got) != string(shown) {
			t.Errorf("%s: two.txt holds %q, want %q (the version shown stays)", p.name, got, shown)
		}
		if ents, _ := os.ReadDir(filepath.Join(p.arena, ".realize-conflicts")); len(ents) != 0 {
			t.Errorf("%s still keeps %d loser files aside", p.name, len(ents))
		}
	}
	if _, _, err := tg.Lookup("/conflicts/home/two.txt"); err == nil {
		t.Error("conflicts/home/two.txt still there")
	}
	// Both resolutions are in the history, and the logs verify.
	ops := 0
	for _, r := range b.log() {
		if r.Op == "resolve" {
			ops++
		}
	}
	if ops < 2 {
		t.Errorf("b's log has %d resolve entries, want both resolutions", ops)
	}
	for _, p := range []*peer{a, b} {
		if out, errs, code := p.run("log", "--verify"); code != 0 {
			t.Errorf("%s: log --verify: exit %d\n%s%s", p.name, code, out, errs)
		}
	}
}
