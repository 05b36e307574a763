package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// heldStatus is the part of `realize status --json` about held deletions.
type heldStatus struct {
	Arenas []struct {
		Name string `json:"name"`
		Held *struct {
			Since   time.Time `json:"since"`
			Reason  string    `json:"reason"`
			Files   int64     `json:"files"`
			Dirs    int64     `json:"dirs"`
			Percent float64   `json:"percent"`
			Sample  []string  `json:"sample"`
		} `json:"held"`
	} `json:"arenas"`
}

func (p *peer) held() heldStatus {
	p.t.Helper()
	out, _, _ := p.run("status", "--json")
	var s heldStatus
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		p.t.Fatalf("status --json %q: %v", out, err)
	}
	return s
}

// countFiles counts the entries of dir; -1 when it cannot be read.
func countFiles(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		return -1
	}
	return len(ents)
}

// TestMassDeletionHeld: deleting 90% of an arena on A is held — visible
// in A's status, surviving a restart of A — while B keeps every file and
// A's other changes still reach B; `realize approve` on A then deletes
// them on B too. Approving with nothing held, or an arena that does not
// exist, fails with a clear message.
func TestMassDeletionHeld(t *testing.T) {
	a := newNamedPeer(t, "alpha", freeAddr(t))
	b := newNamedPeer(t, "bravo", freeAddr(t))
	introduce(a, b)
	introduce(b, a)
	os.Mkdir(filepath.Join(a.arena, "d"), 0o755)
	for i := range 20 {
		os.WriteFile(filepath.Join(a.arena, "d", fmt.Sprintf("f%02d", i)), []byte(fmt.Sprint("file ", i)), 0o644)
	}
	a.start()
	b.start()
	waitFile(t, b, "d/f19", []byte("file 19"), 20*time.Second)
	b.waitFor("every file on b", 20*time.Second, func() bool { return countFiles(t, filepath.Join(b.arena, "d")) == 20 })

	for i := range 18 {
		os.Remove(filepath.Join(a.arena, "d", fmt.Sprintf("f%02d", i)))
	}
	a.waitFor("the deletions held on a", 20*time.Second, func() bool {
		s := a.held()
		return len(s.Arenas) == 1 && s.Arenas[0].Held != nil && s.Arenas[0].Held.Files == 18
	})
	h := a.held().Arenas[0].Held
	if h.Reason != "share" || h.Percent != 90 || len(h.Sample) == 0 || h.Sample[0] != "d/f00" {
		t.Fatalf("held = %+v", h)
	}
	text := a.mustRun("status")
	for _, want := range []string{"HELD     18 deletions", "realize approve home"} {
		if !strings.Contains(text, want) {
			t.Errorf("status text lacks %q:\n%s", want, text)
		}
	}
	// A change made after the deletions reaches B: B has seen everything A
	// recorded since, and still has every file.
	os.WriteFile(filepath.Join(a.arena, "after.txt"), []byte("after"), 0o644)
	waitFile(t, b, "after.txt", []byte("after"), 20*time.Second)
	if n := countFiles(t, filepath.Join(b.arena, "d")); n != 20 {
		t.Fatalf("b has %d of 20 files while a holds the deletions", n)
	}
	// The hold survives a crash and restart of A.
	a.kill()
	a.start()
	a.waitIndexed(20 * time.Second)
	// (the time it began is stored, not made anew by the scan at start).
	if after := a.held().Arenas[0].Held; after == nil || after.Files != 18 || !after.Since.Equal(h.Since) {
		t.Fatalf("after restart: held = %+v, before %+v", after, h)
	}

	// Bad input: nothing held on B; an arena that does not exist.
	if out, errs, code := b.run("approve"); code != 1 || !strings.Contains(errs, "no deletions are held") {
		t.Errorf("approve on b: exit %d, %q %q", code, out, errs)
	}
	if _, errs, code := a.run("approve", "nosuch"); code != 2 || !strings.Contains(errs, `no arena called "nosuch"`) {
		t.Errorf("approve nosuch: exit %d, %q", code, errs)
	}
	if n := countFiles(t, filepath.Join(b.arena, "d")); n != 20 {
		t.Fatalf("b has %d of 20 files after bad approvals", n)
	}

	out := a.mustRun("approve", "home")
	if !strings.Contains(out, "recorded 18 deletions") {
		t.Fatalf("approve: %q", out)
	}
	b.waitFor("the deletions on b", 20*time.Second, func() bool { return countFiles(t, filepath.Join(b.arena, "d")) == 2 })
	if h := a.held().Arenas[0].Held; h != nil {
		t.Fatalf("still held after approve: %+v", h)
	}
	removes := 0
	for _, r := range a.log() {
		if r.Op == "remove" && r.Peer == a.id {
			removes++
		}
	}
	if removes != 18 {
		t.Errorf("a's own log has %d removals, want 18", removes)
	}
	a.stop()
	b.stop()
}

// TestMassDeletionThroughNFS: unreal files removed one by one through B's
// NFS export: the first 9 are recorded at once (fewer than 10 deletions are
// never held), from the 10th they settle and are judged together with
// those: the other 9 are held — gone from B's mount at once, kept on A —
// until B approves.
func TestMassDeletionThroughNFS(t *testing.T) {
	a := newNamedPeer(t, "alpha", freeAddr(t))
	nfsAddr := freeTCPAddr(t)
	b := newPeerWith(t, "bravo", freeAddr(t), nfsAddr, false)
	introduce(a, b)
	introduce(b, a)
	os.Mkdir(filepath.Join(a.arena, "d"), 0o755)
	for i := range 20 {
		os.WriteFile(filepath.Join(a.arena, "d", fmt.Sprintf("f%02d", i)), []byte(fmt.Sprint("file ", i)), 0o644)
	}
	a.start()
	b.start()
	b.waitFor("b lists the 20 files", 20*time.Second, func() bool {
		s := b.status()
		return len(s.Arenas) == 1 && s.Arenas[0].Files == 20
	})
	tg := nfsMount(t, nfsAddr, "/")
	for i := range 18 {
		if err := tg.Remove(fmt.Sprintf("/home/d/f%02d", i)); err != nil {
			t.Fatalf("nfs remove f%02d: %v", i, err)
		}
	}
	ents, err := tg.ReadDirPlus("/home/d")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if n := e.Name(); n != "." && n != ".." {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	if strings.Join(names, ",") != "f18,f19" {
		t.Fatalf("b's mount lists %v, want the removed files gone", names)
	}
	b.waitFor("the removals held on b", 20*time.Second, func() bool {
		h := b.held().Arenas[0].Held
		return h != nil && h.Files == 9
	})
	// A change made after the removals reaches A: A has seen what B
	// recorded, and kept every file whose removal is held.
	nfsWrite(t, tg, "/home/after.txt", []byte("after"))
	waitFile(t, a, "after.txt", []byte("after"), 20*time.Second)
	if n := countFiles(t, filepath.Join(a.arena, "d")); n != 11 {
		t.Fatalf("a has %d files in d, want 11 (9 removals held on b)", n)
	}
	if out := b.mustRun("approve"); !strings.Contains(out, "recorded 9 deletions") {
		t.Fatalf("approve: %q", out)
	}
	a.waitFor("the approved removals on a", 20*time.Second, func() bool { return countFiles(t, filepath.Join(a.arena, "d")) == 2 })
	a.stop()
	b.stop()
}

// TestMassDeletionRejected: an accidental `rm -rf` on A, held, is undone
// with `realize approve --reject`: nothing is deleted anywhere, A lists the
// files again (unreal: their bytes are on B) and `realize pin` brings them
// back byte-identical.
func TestMassDeletionRejected(t *testing.T) {
	a := newNamedPeer(t, "alpha", freeAddr(t))
	b := newNamedPeer(t, "bravo", freeAddr(t))
	introduce(a, b)
	introduce(b, a)
	os.MkdirAll(filepath.Join(a.arena, "d", "sub"), 0o755)
	for i := range 20 {
		os.WriteFile(filepath.Join(a.arena, "d", fmt.Sprintf("f%02d", i)), []byte(fmt.Sprint("file ", i)), 0o644)
	}
	a.start()
	b.start()
	b.waitFor("every file on b", 20*time.Second, func() bool { return countFiles(t, filepath.Join(b.arena, "d")) == 21 })
	a.waitFor("b holds a's files", 20*time.Second, func() bool {
		st, ok := a.pathStatus("home:d/f19")
		return ok && len(st.Holders) == 2
	})
	os.RemoveAll(filepath.Join(a.arena, "d"))
	a.waitFor("the deletions held on a", 20*time.Second, func() bool {
		h := a.held().Arenas[0].Held
		return h != nil && h.Files == 20 && h.Dirs == 2
	})
	out := a.mustRun("approve", "--reject")
	if !strings.Contains(out, "put back 22 paths") {
		t.Fatalf("approve --reject: %q", out)
	}
	if h := a.held().Arenas[0].Held; h != nil {
		t.Fatalf("still held after reject: %+v", h)
	}
	if st, ok := a.pathStatus("home:d/f07"); !ok || st.State != "remote" {
		t.Fatalf("d/f07 on a after reject: %+v", st)
	}
	a.mustRun("pin", "home:d")
	for i := range 20 {
		waitFile(t, a, fmt.Sprintf("d/f%02d", i), []byte(fmt.Sprint("file ", i)), 20*time.Second)
	}
	if fi, err := os.Stat(filepath.Join(a.arena, "d", "sub")); err != nil || !fi.IsDir() {
		t.Fatalf("d/sub not back on a: %v", err)
	}
	for _, r := range a.log() {
		if r.Op == "remove" || r.Op == "rmdir" {
			t.Errorf("a recorded %s %s", r.Op, r.Path)
		}
	}
	if n := countFiles(t, filepath.Join(b.arena, "d")); n != 21 {
		t.Fatalf("b has %d entries in d, want 21", n)
	}
	a.stop()
	b.stop()
}
