package unreal

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/internal/config"
)

// diskBytes is what the files under dir occupy on disk.
func diskBytes(t *testing.T, dir string) int64 {
	entries, _ := os.ReadDir(dir)
	var n int64
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			continue
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512
		}
	}
	return n
}

// TestQuotaWhileReading reads 200 MiB of blobs (sequentially, read-ahead
// on) through a 50 MiB cache: usage never exceeds the quota plus one
// block, and the held blob and the last-copy blob keep every block.
func TestQuotaWhileReading(t *testing.T) {
	const max = 50 << 20
	rng := rand.New(rand.NewPCG(20, 20))
	held := newBlob(rng, 1<<20, 1<<20, 1<<20, 1<<20)
	lastCopy := newBlob(rng, 1<<20, 1<<20, 1<<20, 1<<20)
	bigs := []*testBlob{bigBlob(1, 50), bigBlob(2, 50), bigBlob(3, 50), bigBlob(4, 50)}
	src := newFakeSource(append([]*testBlob{held, lastCopy}, bigs...)...)
	env := newEnv(t, src, func(o *CacheOptions) {
		o.Max = config.Size{Bytes: max}
		o.ReadAhead = 0 // the default
		o.OthersHold = func(b realize.Hash) int {
			if b == lastCopy.meta.Blob {
				return 0
			}
			return 1
		}
	})
	c := env.open()
	read(t, c, held, 0, int(held.meta.Size))
	release := c.Hold(held.meta.Blob)
	defer release()
	read(t, c, lastCopy, 0, int(lastCopy.meta.Size))

	check := func() {
		t.Helper()
		if used, limit := c.Usage(); used > max+(1<<20) || limit != max {
			t.Fatalf("used %d, limit %d (max %d)", used, limit, max)
		}
	}
	for _, b := range bigs {
		for off := int64(0); off < b.meta.Size; off += 1 << 20 {
			read(t, c, b, off, 1<<20)
			check()
		}
	}
	for _, b := range []*testBlob{held, lastCopy} {
		if n, _ := c.Present(b.meta.Blob); n != b.meta.Size {
			t.Fatalf("protected blob evicted: %d of %d bytes left", n, b.meta.Size)
		}
	}
	s := c.Stats()
	if s.Evicted < 100<<20 || s.Fetched < 200<<20 {
		t.Fatalf("stats %+v", s)
	}
	if d := diskBytes(t, env.opt.Dir); d > max+(4<<20) {
		t.Fatalf("cache files occupy %d bytes on disk (holes not punched?)", d)
	}
	// The blob read last is the one cached now.
	if n, _ := c.Present(bigs[3].meta.Blob); n == 0 {
		t.Fatal("the most recent blob is not cached")
	}
	if n, _ := c.Present(bigs[0].meta.Blob); n != 0 {
		t.Fatalf("the oldest blob still has %d bytes", n)
	}
}

// TestNothingEvictablePassesThrough: a full cache of protected blobs
// serves new blocks without storing them.
func TestNothingEvictablePassesThrough(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 21))
	a, b := newBlob(rng, 600_000), newBlob(rng, 600_000)
	src := newFakeSource(a, b)
	c := newEnv(t, src, func(o *CacheOptions) {
		o.Max = config.Size{Bytes: 1 << 20}
		o.OthersHold = nil // nobody else known to hold anything: nothing evictable
	}).open()
	read(t, c, a, 0, 600_000)
	read(t, c, b, 0, 600_000)
	read(t, c, b, 100, 600_000)
	if n, _ := c.Present(a.meta.Blob); n != 600_000 {
		t.Fatal("a last copy was evicted")
	}
	if n, _ := c.Present(b.meta.Blob); n != 0 {
		t.Fatal("stored over the quota")
	}
	if c.Stats().PassThrough != 1 {
		t.Fatalf("stats %+v", c.Stats())
	}
}

func sameFile(t *testing.T, a os.FileInfo, path string) {
	t.Helper()
	b, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(a, b) {
		t.Fatalf("%s is not the same file (copied instead of renamed)", path)
	}
}

func TestAdoptAndTakeRename(t *testing.T) {
	rng := rand.New(rand.NewPCG(22, 22))
	b := newBlob(rng, 300_000, 500_000, 400_000)
	src := newFakeSource(b)
	env := newEnv(t, src, nil)
	c := env.open()
	real := filepath.Join(env.data, "real-file")
	os.WriteFile(real, b.data, 0o644)
	before, _ := os.Stat(real)

	if err := c.Adopt(b.meta.Blob, b.meta.Size+1, b.bm, real); realize.KindOf(err) != realize.Invalid {
		t.Fatalf("adopt with a wrong size: %v", err)
	}
	if err := c.Adopt(b.meta.Blob, b.meta.Size, b.bm, real); err != nil {
		t.Fatal(err)
	}
	sameFile(t, before, c.path(b.meta.Blob))
	if _, err := os.Stat(real); !os.IsNotExist(err) {
		t.Fatal("adopted file still at its place")
	}
	if n, _ := c.Present(b.meta.Blob); n != b.meta.Size {
		t.Fatalf("present %d", n)
	}
	read(t, c, b, 0, int(b.meta.Size))
	if len(src.fetched(b.meta.Blob)) != 0 || src.mapCalls() != 0 {
		t.Fatal("an adopted blob was fetched")
	}

	dst := filepath.Join(env.data, "pinned")
	if err := c.Take(b.meta.Blob, dst); err != nil {
		t.Fatal(err)
	}
	sameFile(t, before, dst)
	if n, _ := c.Present(b.meta.Blob); n != 0 {
		t.Fatalf("present %d after take", n)
	}
	if err := c.Take(b.meta.Blob, dst+"2"); realize.KindOf(err) != realize.NotExist {
		t.Fatalf("take again: %v", err)
	}
	if used, _ := c.Usage(); used != 0 {
		t.Fatalf("used %d after take", used)
	}

	// Reopened, the taken blob has no record left.
	c.Close()
	c = env.open()
	if n, _ := c.Present(b.meta.Blob); n != 0 {
		t.Fatal("taken blob back after reopen")
	}
}

func TestTakeIncompleteIsNotExist(t *testing.T) {
	b := eightBlocks(23)
	c := newEnv(t, newFakeSource(b), nil).open()
	read(t, c, b, 0, 10)
	if err := c.Take(b.meta.Blob, filepath.Join(t.TempDir(), "x")); realize.KindOf(err) != realize.NotExist {
		t.Fatalf("take of a partial blob: %v", err)
	}
}

func TestCrossDeviceIsUnsupported(t *testing.T) {
	other, err := os.MkdirTemp("/dev/shm", "unreal-test-")
	if err != nil {
		t.Skip("no /dev/shm:", err)
	}
	defer os.RemoveAll(other)
	rng := rand.New(rand.NewPCG(24, 24))
	b := newBlob(rng, 5000)
	env := newEnv(t, newFakeSource(b), nil)
	var st1, st2 syscall.Stat_t
	syscall.Stat(other, &st1)
	syscall.Stat(env.data, &st2)
	if st1.Dev == st2.Dev {
		t.Skip("/dev/shm is on the same file system as the temp dir")
	}
	c := env.open()
	path := filepath.Join(other, "f")
	os.WriteFile(path, b.data, 0o600)
	if err := c.Adopt(b.meta.Blob, b.meta.Size, nil, path); realize.KindOf(err) != realize.Unsupported {
		t.Fatalf("cross-device adopt: %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal("file gone after a failed adopt")
	}
	read(t, c, b, 0, 5000)
	if err := c.Take(b.meta.Blob, filepath.Join(other, "g")); realize.KindOf(err) != realize.Unsupported {
		t.Fatalf("cross-device take: %v", err)
	}
	if n, _ := c.Present(b.meta.Blob); n != 5000 {
		t.Fatal("blob lost after a failed take")
	}
}

// TestRandomReads compares random reads, from several goroutines, of
// blobs cut into random blocks, through a cache small enough to evict
// all the time, with the bytes.
func TestRandomReads(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 25))
	var blobs []*testBlob
	for range 4 {
		var sizes []int
		for range 1 + rng.IntN(12) {
			sizes = append(sizes, 64<<10+rng.IntN(960<<10))
		}
		if total := sum(sizes); total <= 1<<20 {
			sizes = []int{total} // at most 1 MiB is one block
		}
		blobs = append(blobs, newBlob(rng, sizes...))
	}
	blobs = append(blobs, newBlob(rng, 1+rng.IntN(1<<20)))
	src := newFakeSource(blobs...)
	src.peers = []realize.PeerID{peerA, peerB}
	src.corrupt[peerA] = map[int]bool{1: true}
	env := newEnv(t, src, func(o *CacheOptions) {
		o.Max = config.Size{Bytes: 3 << 20}
		o.ReadAhead = 2
	})
	c := env.open()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(g)))
			for range 60 {
				b := blobs[r.IntN(len(blobs))]
				off := r.Int64N(b.meta.Size + 100)
				if r.IntN(3) == 0 { // sometimes sequential
					off = 0
				}
				if err := readCheck(t, c, b, off, 1+r.IntN(600<<10)); err != nil {
					t.Error(err)
					return
				}
				if used, _ := c.Usage(); used > 4<<20 {
					t.Errorf("used %d", used)
				}
			}
		}()
	}
	wg.Wait()
}

func sum(s []int) int {
	n := 0
	for _, v := range s {
		n += v
	}
	return n
}
