package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCacheQuota: with cache max = 50 MiB, reading 200 MiB of unreal files
// through NFS keeps the cache under max plus one block, and a file that
// was made real (pinned) is untouched by eviction.
func TestCacheQuota(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 200 MiB")
	}
	a := newPeerWith(t, "alpha", freeAddr(t), "", true)
	nfsAddr := freeTCPAddr(t)
	b := newPeerWith(t, "bravo", freeAddr(t), nfsAddr, false)
	cfg, err := os.ReadFile(b.config)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(cfg), `max = "10%"`, `max = "50MiB"`, 1)
	s = strings.Replace(s, `leave = "5GB"`, `leave = "0"`, 1)
	if !strings.Contains(s, `max = "50MiB"`) {
		t.Fatal("the config template changed: cannot set cache.max")
	}
	os.WriteFile(b.config, []byte(s), 0o600)
	introduce(a, b)
	introduce(b, a)
	const n, size = 4, 50 << 20
	files := make([][]byte, n)
	for i := range files {
		files[i] = bytesOf(size, uint64(100+i))
		os.WriteFile(filepath.Join(a.arena, fmt.Sprintf("f%d.bin", i)), files[i], 0o644)
	}
	os.WriteFile(filepath.Join(a.arena, "keep.bin"), bytesOf(1<<20, 99), 0o644)
	a.start()
	b.start()
	b.waitFor("B lists the files", 60*time.Second, func() bool {
		st, ok := b.pathStatus(fmt.Sprintf("home:f%d.bin", n-1))
		return ok && st.State == "remote"
	})
	b.mustRun("pin", "home:keep.bin")
	tg := nfsMount(t, nfsAddr, "/")
	const max, block = 50 << 20, 1 << 20
	for i := range files {
		for off := 0; off < size; off += 8 << 20 {
			got, err := nfsRead(tg, fmt.Sprintf("/home/f%d.bin", i), int64(off), min(8<<20, size-off))
			if err != nil || !bytes.Equal(got, files[i][off:off+len(got)]) || len(got) == 0 {
				t.Fatalf("f%d at %d: %d bytes, %v", i, off, len(got), err)
			}
			if used := b.cache().Cache.UsedBytes; used > max+block {
				t.Fatalf("cache holds %d bytes after reading f%d to %d MiB; max is %d", used, i, off>>20, max)
			}
		}
	}
	if st := b.cache(); st.Cache.FetchedBytes < n*size {
		t.Fatalf("fetched only %d bytes for %d read: reads were not fetched on demand", st.Cache.FetchedBytes, n*size)
	}
	if got, err := os.ReadFile(filepath.Join(b.arena, "keep.bin")); err != nil || !bytes.Equal(got, bytesOf(1<<20, 99)) {
		t.Fatalf("the pinned file changed: %v", err)
	}
}
