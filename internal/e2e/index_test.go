package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLogFollowsChanges: every kind of change made in the arena shows up
// in `realize log` within 2 s, in order, with the hash b3sum computes.
func TestLogFollowsChanges(t *testing.T) {
	p := newPeer(t)
	p.start()
	p.waitIndexed(10 * time.Second)
	file := func(rel string) string { return filepath.Join(p.arena, rel) }
	steps := []struct {
		name string
		do   func() error
		want []string // "op path" (and "<-from" for renames), in order
	}{
		{"create", func() error { return os.WriteFile(file("a.txt"), []byte("hello\n"), 0o644) }, []string{"add a.txt"}},
		{"mkdir", func() error { return os.MkdirAll(file("docs/empty"), 0o755) }, []string{"mkdir docs", "mkdir docs/empty"}},
		{"edit", func() error { return os.WriteFile(file("a.txt"), []byte("hello, world\n"), 0o644) }, []string{"replace a.txt"}},
		{"rename", func() error { return os.Rename(file("a.txt"), file("docs/b.txt")) }, []string{"rename docs/b.txt<-a.txt"}},
		{"rename dir", func() error { return os.Rename(file("docs"), file("papers")) },
			[]string{"mkdir papers", "mkdir papers/empty", "rename papers/b.txt<-docs/b.txt", "rmdir docs/empty", "rmdir docs"}},
		{"delete", func() error { return os.Remove(file("papers/b.txt")) }, []string{"remove papers/b.txt"}},
		{"rmdir", func() error { return os.RemoveAll(file("papers")) }, []string{"rmdir papers/empty", "rmdir papers"}},
	}
	seen := len(p.log())
	for _, s := range steps {
		start := time.Now()
		if err := s.do(); err != nil {
			t.Fatal(err)
		}
		var got []string
		p.waitFor(s.name+" in the log within 2 s", 2*time.Second, func() bool {
			recs := p.log()
			got = got[:0]
			for _, r := range recs[seen:] {
				e := r.Op + " " + r.Path
				if r.From != "" {
					e += "<-" + r.From
				}
				got = append(got, e)
			}
			return len(got) >= len(s.want)
		})
		if strings.Join(got, "|") != strings.Join(s.want, "|") {
			t.Fatalf("%s: log got %q, want %q", s.name, got, s.want)
		}
		seen += len(got)
		t.Logf("%s: in the log after %v", s.name, time.Since(start).Round(time.Millisecond))
	}
	// Hashes compare directly with b3sum.
	os.WriteFile(file("check.bin"), bytesOf(3<<20, 7), 0o644)
	want := b3sum(t, file("check.bin"))
	p.waitFor("check.bin hashed", 5*time.Second, func() bool {
		recs := p.log()
		last := recs[len(recs)-1]
		return last.Path == "check.bin" && last.Hash == want && *last.Size == 3<<20
	})
	p.mustRun("log", "--verify")
	p.stop()
}

// TestKillDuringIndexing kills the daemon with SIGKILL at random moments
// while it indexes, and between kills changes files (edits, new files,
// renames, deletions) so that every restart has work in flight. Then it
// checks that nothing was lost or recorded twice: the log verifies (chain,
// signature, and the index agrees with a replay of the history, which also
// rejects a state recorded twice), and every file on disk is in the log
// with the hash b3sum computes.
func TestKillDuringIndexing(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	p := newPeer(t)
	const files = 4000
	name := func(i int) string { return filepath.Join(fmt.Sprintf("d%02d", i%40), fmt.Sprintf("f%05d", i)) }
	for i := 0; i < files; i++ {
		os.MkdirAll(filepath.Join(p.arena, filepath.Dir(name(i))), 0o755)
		if err := os.WriteFile(filepath.Join(p.arena, name(i)), bytesOf(8<<10+i*7%(120<<10), uint64(i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	// Kill at random moments until ten kills have landed while indexing
	// was under way (bounded: a machine too fast to catch mid-work fails).
	var midWork, rounds int
	for round := 0; midWork < 10 && round < 40; round++ {
		rounds++
		p.start()
		time.Sleep(time.Duration(rng.IntN(250)) * time.Millisecond)
		if s := p.status(); len(s.Arenas) == 1 && (s.Arenas[0].Scanning || s.Arenas[0].PendingHash > 0) {
			midWork++
		}
		p.kill()
		// Changes while the daemon is down: all must be picked up.
		for k := 0; k < 400; k++ {
			i := rng.IntN(files)
			path := filepath.Join(p.arena, name(i))
			switch rng.IntN(4) {
			case 0: // edit
				os.WriteFile(path, bytesOf(1000+rng.IntN(600<<10), rng.Uint64()), 0o644)
			case 1: // rename within or across directories
				os.Rename(path, filepath.Join(p.arena, fmt.Sprintf("d%02d", rng.IntN(40)), fmt.Sprintf("r%d-%d", round, k)))
			case 2: // delete
				os.Remove(path)
			case 3: // new file
				os.WriteFile(filepath.Join(p.arena, fmt.Sprintf("d%02d", rng.IntN(40)), fmt.Sprintf("n%d-%d", round, k)), bytesOf(rng.IntN(300<<10), rng.Uint64()), 0o644)
			}
		}
	}
	t.Logf("%d of %d kills landed while indexing was under way", midWork, rounds)
	if midWork < 10 {
		t.Errorf("only %d kills landed mid-indexing; the test is not testing what it claims", midWork)
	}
	p.start()
	p.waitIndexed(60 * time.Second)
	out := p.mustRun("log", "--verify")
	if !strings.HasPrefix(out, "ok") {
		t.Fatalf("verify output: %s", out)
	}
	p.stop()

	// The last recorded state of every path, from the log.
	last := map[string]string{}
	for _, r := range p.log() {
		switch r.Op {
		case "remove", "rmdir":
			delete(last, r.Path)
		case "rename":
			delete(last, r.From)
			last[r.Path] = r.Hash
		case "add", "replace":
			last[r.Path] = r.Hash
		}
	}
	// Every file on disk, hashed by b3sum in one go.
	cmd := exec.Command("sh", "-c", `cd "$1" && find . -type f -print0 | xargs -0 b3sum`, "sh", p.arena)
	sums, err := cmd.Output()
	if err != nil {
		t.Skipf("b3sum unavailable: %v", err)
	}
	onDisk := 0
	for _, line := range strings.Split(strings.TrimSpace(string(sums)), "\n") {
		hash, path, _ := strings.Cut(line, "  ")
		path = strings.TrimPrefix(path, "./")
		onDisk++
		if got, ok := last[path]; !ok {
			t.Errorf("%s: on disk, not recorded", path)
		} else if got != hash {
			t.Errorf("%s: recorded %s, b3sum %s", path, got, hash)
		}
		delete(last, path)
	}
	for path := range last {
		t.Errorf("%s: recorded as present, not on disk", path)
	}
	t.Logf("%d files on disk all match the log", onDisk)
}

func bytesOf(n int, seed uint64) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16)}).Read(b)
	return b
}
