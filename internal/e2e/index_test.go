package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
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
// while it indexes a large tree, changes files while it is down, and then
// checks that nothing was lost or recorded twice: the log verifies, the
// index agrees with the history, and every file's last recorded hash is
// its b3sum.
func TestKillDuringIndexing(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	p := newPeer(t)
	const files = 6000
	for i := 0; i < files; i++ {
		dir := filepath.Join(p.arena, fmt.Sprintf("d%02d", i%40))
		os.MkdirAll(dir, 0o755)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%05d", i)), bytesOf(8<<10+i*7%(120<<10), uint64(i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	for round := 0; round < 10; round++ {
		p.start()
		time.Sleep(time.Duration(rng.IntN(1500)) * time.Millisecond)
		p.kill()
		// A change made while the daemon is down must be picked up.
		rel := filepath.Join(fmt.Sprintf("d%02d", round), fmt.Sprintf("down-%d", round))
		os.WriteFile(filepath.Join(p.arena, rel), []byte(fmt.Sprint("written while down ", round)), 0o644)
		victim := filepath.Join(p.arena, fmt.Sprintf("d%02d", round%40), fmt.Sprintf("f%05d", round))
		os.WriteFile(victim, bytesOf(5000, uint64(1000+round)), 0o644)
	}
	p.start()
	p.waitIndexed(60 * time.Second)
	out := p.mustRun("log", "--verify")
	if !strings.Contains(out, "ok") {
		t.Fatalf("verify output: %s", out)
	}
	p.stop()

	// Every file on disk has exactly the hash the log last recorded for it.
	last := map[string]string{}
	for _, r := range p.log() {
		switch r.Op {
		case "remove", "rmdir":
			delete(last, r.Path)
		case "add", "replace", "rename":
			last[r.Path] = r.Hash
			if r.From != "" {
				delete(last, r.From)
			}
		}
	}
	n := 0
	filepath.Walk(p.arena, func(path string, info os.FileInfo, err error) error {
		if err != nil || !info.Mode().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(p.arena, path)
		if last[rel] == "" {
			t.Errorf("%s: not recorded", rel)
		} else if n++; n%50 == 0 || strings.Contains(rel, "down-") || rel == "d00/f00000" {
			if want := b3sum(t, path); last[rel] != want {
				t.Errorf("%s: recorded hash %s, b3sum %s", rel, last[rel], want)
			}
		}
		return nil
	})
	if n != files+10 {
		t.Errorf("%d files recorded, want %d", n, files+10)
	}
}

func bytesOf(n int, seed uint64) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16)}).Read(b)
	return b
}
