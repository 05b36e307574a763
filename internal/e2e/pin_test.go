package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

type pathStatus struct {
	Kind        string `json:"kind"`
	Mark        string `json:"mark"`
	State       string `json:"state"`
	Hash        string `json:"hash"`
	CachedBytes int64  `json:"cached_bytes"`
	Holders     []struct {
		Name string `json:"name"`
	} `json:"holders"`
	RealFiles   int64 `json:"real_files"`
	UnrealFiles int64 `json:"unreal_files"`
}

func (p *peer) pathStatus(ref string) (pathStatus, bool) {
	out, _, code := p.run("status", "--json", ref)
	var st pathStatus
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		return st, false
	}
	return st, true
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// TestPinUnpin: B (unpinned) lists A's files without their bytes; pinning
// a directory makes every file below it real on B; unpinning moves them
// into B's cache by rename (same inode, no bytes copied); unpinning a
// file no other peer holds is refused with its name.
func TestPinUnpin(t *testing.T) {
	a := newPeerWith(t, "alpha", freeAddr(t), "", true)
	b := newPeerWith(t, "bravo", freeAddr(t), "", false)
	introduce(a, b)
	introduce(b, a)
	big := bytesOf(3<<20+5, 7)
	os.MkdirAll(filepath.Join(a.arena, "docs", "sub"), 0o755)
	os.WriteFile(filepath.Join(a.arena, "docs", "a.txt"), []byte("alpha's a\n"), 0o644)
	os.WriteFile(filepath.Join(a.arena, "docs", "sub", "big.bin"), big, 0o644)
	os.WriteFile(filepath.Join(a.arena, "top.txt"), []byte("top\n"), 0o644)
	a.start()
	b.start()

	b.waitFor("B lists A's files", 20*time.Second, func() bool {
		st, ok := b.pathStatus("home:docs/sub/big.bin")
		return ok && st.State == "remote"
	})
	for _, rel := range []string{"docs/a.txt", "docs/sub/big.bin", "top.txt"} {
		if _, err := os.Lstat(filepath.Join(b.arena, rel)); err == nil {
			t.Fatalf("%s is real on B before any pin", rel)
		}
	}
	if st, _ := b.pathStatus("home:docs/sub/big.bin"); st.Mark != "unpinned" || len(st.Holders) != 1 || st.Holders[0].Name != "alpha" {
		t.Fatalf("status of an unreal file on B: %+v", st)
	}

	// Pin a directory, given as a path inside B's real directory.
	out, errs, code := b.run("pin", filepath.Join(b.arena, "docs"))
	if code != 0 {
		t.Fatalf("pin: exit %d\n%s\n%s", code, out, errs)
	}
	waitFile(t, b, "docs/a.txt", []byte("alpha's a\n"), time.Second)
	waitFile(t, b, "docs/sub/big.bin", big, time.Second)
	if _, err := os.Lstat(filepath.Join(b.arena, "top.txt")); err == nil {
		t.Fatal("top.txt became real though only docs was pinned")
	}
	st, _ := b.pathStatus("home:docs/sub/big.bin")
	if st.State != "real" || st.Mark != "pinned" {
		t.Fatalf("after pin: %+v", st)
	}
	// A learns that B holds it too.
	a.waitFor("A sees B holding big.bin", 10*time.Second, func() bool {
		st, _ := a.pathStatus("home:docs/sub/big.bin")
		return len(st.Holders) == 2
	})

	// Unpin: the files move into B's cache, same inode, and stay listed.
	ino := inode(t, filepath.Join(b.arena, "docs", "sub", "big.bin"))
	out, errs, code = b.run("unpin", "home:docs")
	if code != 0 {
		t.Fatalf("unpin: exit %d\n%s\n%s", code, out, errs)
	}
	if _, err := os.Lstat(filepath.Join(b.arena, "docs", "sub", "big.bin")); err == nil {
		t.Fatal("big.bin still real on B after unpin")
	}
	cached := filepath.Join(b.data, "cache", st.Hash)
	if got := inode(t, cached); got != ino {
		t.Fatalf("cached blob has inode %d, the real file had %d: bytes were copied", got, ino)
	}
	st, _ = b.pathStatus("home:docs/sub/big.bin")
	if st.State != "cached" || st.CachedBytes != int64(len(big)) {
		t.Fatalf("after unpin: %+v", st)
	}

	// A file only B has cannot be unpinned: it is the last copy.
	a.stop() // so that A never receives it
	os.WriteFile(filepath.Join(b.arena, "docs", "mine.txt"), []byte("only on bravo\n"), 0o644)
	b.waitFor("mine.txt indexed", 10*time.Second, func() bool {
		st, ok := b.pathStatus("home:docs/mine.txt")
		return ok && st.State == "real"
	})
	out, errs, code = b.run("unpin", "home:docs/mine.txt")
	if code != 1 || !strings.Contains(errs+out, "mine.txt") || !strings.Contains(errs+out, "last copy") {
		t.Fatalf("unpin of the only copy: exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	if got, err := os.ReadFile(filepath.Join(b.arena, "docs", "mine.txt")); err != nil || string(got) != "only on bravo\n" {
		t.Fatalf("the only copy was touched: %q %v", got, err)
	}
}
