package unreal

import (
	"context"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/realizefs/realize"
)

// eightBlocks is a blob of 8 blocks of 200 000 bytes.
func eightBlocks(seed uint64) *testBlob {
	rng := rand.New(rand.NewPCG(seed, 2))
	return newBlob(rng, 200_000, 200_000, 200_000, 200_000, 200_000, 200_000, 200_000, 200_000)
}

func TestReadFetchesOnlyNeededBlocks(t *testing.T) {
	const bs = 200_000
	tests := []struct {
		name    string
		pre     [][2]int64 // ranges read first (off, len)
		off     int64
		n       int
		fetched []int
	}{
		{"inside one block", nil, 3*bs + 10, 100, []int{3}},
		{"across blocks", nil, 2*bs + 5, 2*bs + 10, []int{2, 3, 4}},
		{"exact block", nil, 5 * bs, bs, []int{5}},
		{"partly cached", [][2]int64{{3 * bs, 1}}, 2*bs + 5, 2*bs + 10, []int{2, 4}},
		{"cached", [][2]int64{{2 * bs, 3 * bs}}, 2*bs + 5, 2*bs + 10, nil},
		{"past the end", nil, 8*bs - 10, 100, []int{7}},
		{"at the end", nil, 8 * bs, 100, nil},
		{"huge offset", nil, 1 << 62, 100, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := eightBlocks(1)
			src := newFakeSource(b)
			c := newEnv(t, src, nil).open()
			for _, r := range tc.pre {
				read(t, c, b, r[0], int(r[1]))
			}
			src.reset()
			read(t, c, b, tc.off, tc.n)
			if got := src.fetched(b.meta.Blob); !slices.Equal(got, tc.fetched) {
				t.Errorf("fetched blocks %v, want %v", got, tc.fetched)
			}
			if tc.pre != nil && src.mapCalls() != 0 {
				t.Errorf("block map asked again")
			}
		})
	}
}

func TestHugeOffsetAsksNothing(t *testing.T) {
	b := eightBlocks(1)
	src := newFakeSource(b)
	c := newEnv(t, src, nil).open()
	n, err := c.ReadAt(t.Context(), testArena, b.meta, make([]byte, 10), 1<<62)
	if n != 0 || err != io.EOF || src.mapCalls() != 0 || len(src.fetched(b.meta.Blob)) != 0 {
		t.Fatalf("got %d, %v, %d map calls", n, err, src.mapCalls())
	}
	if _, err := c.ReadAt(t.Context(), testArena, b.meta, make([]byte, 10), -1); realize.KindOf(err) != realize.Invalid {
		t.Fatalf("negative offset: %v", err)
	}
}

func TestSmallBlobsNeedNoMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	small, empty := newBlob(rng, 5000), newBlob(rng)
	src := newFakeSource(small, empty)
	c := newEnv(t, src, nil).open()
	read(t, c, small, 100, 200)
	read(t, c, small, 0, 6000)
	read(t, c, empty, 0, 10)
	if src.mapCalls() != 0 || !slices.Equal(src.fetched(small.meta.Blob), []int{0}) {
		t.Fatalf("map calls %d, fetched %v", src.mapCalls(), src.fetched(small.meta.Blob))
	}
}

func TestCorruptBlockOnDiskIsRefetched(t *testing.T) {
	b := eightBlocks(4)
	src := newFakeSource(b)
	env := newEnv(t, src, nil)
	c := env.open()
	read(t, c, b, 0, int(b.meta.Size))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(c.path(b.meta.Blob), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("garbage"), b.offs[2]+1000)
	f.Close()
	src.reset()
	c = env.open() // a new cache: nothing in memory
	read(t, c, b, b.offs[2]+500, 1000)
	read(t, c, b, b.offs[1], 10)
	if got := src.fetched(b.meta.Blob); !slices.Equal(got, []int{2}) {
		t.Fatalf("fetched %v, want [2]", got)
	}
	if s := c.Stats(); s.Rejected != 1 || s.Hits != 1 || s.Misses != 1 {
		t.Fatalf("stats %+v", s)
	}
	if n, _ := c.Present(b.meta.Blob); n != b.meta.Size {
		t.Fatalf("present %d after refetch, want %d", n, b.meta.Size)
	}
}

func TestBadPeerBytesUseAnotherPeer(t *testing.T) {
	b := eightBlocks(5)
	src := newFakeSource(b)
	src.peers = []realize.PeerID{peerA, peerB}
	src.corrupt[peerA] = map[int]bool{3: true}
	c := newEnv(t, src, nil).open()
	read(t, c, b, 0, int(b.meta.Size))
	if src.sentBy(peerB, b.meta.Blob, 3) != 1 || c.Stats().Rejected != 1 {
		t.Fatalf("block 3: B sent %d, rejected %d", src.sentBy(peerB, b.meta.Blob, 3), c.Stats().Rejected)
	}
	for _, i := range []int{0, 4, 7} {
		if src.sentBy(peerA, b.meta.Blob, i) != 1 {
			t.Errorf("block %d not taken from A after its bad block", i)
		}
	}
	if err := c.Drop(b.meta.Blob); err != nil {
		t.Fatal(err)
	}
	c.mem = newMemCache(memCacheBytes) // or it serves the blocks without asking
	src.reset()
	read(t, c, b, 0, int(b.meta.Size))
	if src.sentBy(peerA, b.meta.Blob, 3) != 0 || src.sentBy(peerA, b.meta.Blob, 4) != 1 {
		t.Fatalf("A asked for block 3 again (%d) or not for 4", src.sentBy(peerA, b.meta.Blob, 3))
	}
}

func TestHostileBlockMap(t *testing.T) {
	b := eightBlocks(6)
	src := newFakeSource(b)
	src.peers = []realize.PeerID{peerA, peerB}
	src.hostile[peerA] = true
	c := newEnv(t, src, nil).open()
	read(t, c, b, 0, int(b.meta.Size))
	if n := len(src.sent[peerA]); n != 0 {
		t.Fatalf("a peer that sent a hostile map was asked for %d blocks", n)
	}

	other := eightBlocks(7)
	src2 := newFakeSource(other)
	src2.hostile[peerA] = true
	c2 := newEnv(t, src2, nil).open()
	_, err := c2.ReadAt(t.Context(), testArena, other.meta, make([]byte, 10), 0)
	if realize.KindOf(err) != realize.Corrupt {
		t.Fatalf("only a hostile map: %v, want Corrupt", err)
	}
}

func TestUnavailableWithinWait(t *testing.T) {
	b := eightBlocks(8)
	small := newBlob(rand.New(rand.NewPCG(8, 8)), 1000)
	tests := []struct {
		name  string
		setup func(*fakeSource)
		blob  *testBlob
	}{
		{"no peer", func(f *fakeSource) { f.peers = nil }, b},
		{"no peer, small blob", func(f *fakeSource) { f.peers = nil }, small},
		{"peer hangs on the map", func(f *fakeSource) { f.hang[peerA] = true }, b},
		{"peer hangs on blocks", func(f *fakeSource) { f.gate = make(chan struct{}) }, small},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := newFakeSource(b, small)
			tc.setup(src)
			c := newEnv(t, src, func(o *CacheOptions) { o.Wait = 150 * time.Millisecond }).open()
			start := time.Now()
			_, err := c.ReadAt(t.Context(), testArena, tc.blob.meta, make([]byte, 10), 0)
			if realize.KindOf(err) != realize.Unavailable {
				t.Fatalf("err %v, want Unavailable", err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("took %v", d)
			}
		})
	}
	t.Run("second peer answers in time", func(t *testing.T) {
		src := newFakeSource(b)
		src.peers = []realize.PeerID{peerA, peerB}
		src.hang[peerA] = true
		c := newEnv(t, src, func(o *CacheOptions) { o.Wait = 300 * time.Millisecond }).open()
		read(t, c, b, 0, 10)
	})
	t.Run("canceled", func(t *testing.T) {
		src := newFakeSource(small)
		src.gate = make(chan struct{})
		c := newEnv(t, src, nil).open()
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(20*time.Millisecond, cancel)
		if _, err := c.ReadAt(ctx, testArena, small.meta, make([]byte, 10), 0); realize.KindOf(err) != realize.Canceled {
			t.Fatalf("err %v, want Canceled", err)
		}
	})
}

func TestConcurrentReadersShareOneFetch(t *testing.T) {
	b := eightBlocks(9)
	src := newFakeSource(b)
	src.gate = make(chan struct{})
	c := newEnv(t, src, nil).open()
	var wg sync.WaitGroup
	for k := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := make([]byte, 1000)
			if _, err := c.ReadAt(t.Context(), testArena, b.meta, p, b.offs[4]+int64(k)*1000); err != nil {
				t.Error(err)
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	close(src.gate)
	wg.Wait()
	if got := src.fetched(b.meta.Blob); !slices.Equal(got, []int{4}) || src.mapCalls() != 1 {
		t.Fatalf("fetched %v with %d map calls; want [4] once", got, src.mapCalls())
	}
}

func TestReopenKeepsPresentBlocks(t *testing.T) {
	b := eightBlocks(10)
	src := newFakeSource(b)
	env := newEnv(t, src, nil)
	c := env.open()
	read(t, c, b, b.offs[1], int(3*200_000))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	// A file with no record (written just before a crash) is removed.
	stray := c.path(realize.Hash{9})
	os.WriteFile(stray, []byte("x"), 0o600)
	src.reset()
	c = env.open()
	if n, _ := c.Present(b.meta.Blob); n != 3*200_000 {
		t.Fatalf("present %d after reopen", n)
	}
	if used, _ := c.Usage(); used != 3*200_000 {
		t.Fatalf("used %d after reopen", used)
	}
	read(t, c, b, b.offs[1], int(3*200_000))
	if len(src.fetched(b.meta.Blob)) != 0 || src.mapCalls() != 0 {
		t.Fatalf("fetched %v after reopen", src.fetched(b.meta.Blob))
	}
	if _, err := os.Stat(stray); !os.IsNotExist(err) {
		t.Fatalf("stray file kept: %v", err)
	}
}

func TestDamagedRecordIsDropped(t *testing.T) {
	src := newFakeSource()
	env := newEnv(t, src, nil)
	env.open().Close()
	env.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketCache)
		bk.Put(make([]byte, 32), []byte{1, 2, 3})
		return bk.Put([]byte("short"), []byte{1})
	})
	c := env.open()
	c.Close()
	env.db.View(func(tx *bolt.Tx) error {
		if n := tx.Bucket(bucketCache).Stats().KeyN; n != 0 {
			t.Errorf("%d records left", n)
		}
		return nil
	})
}

func TestRecordRoundTrip(t *testing.T) {
	b := eightBlocks(11)
	s := newBlobState(b.meta.Blob, b.meta.Size, b.bm)
	c := newCache(CacheOptions{})
	c.markPresentLocked(s, 1)
	c.markPresentLocked(s, 7)
	s.access = 12345
	got, present, access, err := decodeRecord(b.meta.Blob, encodeRecord(s))
	if err != nil || access != 12345 || got.size != b.meta.Size || !slices.Equal(got.blocks, b.bm) {
		t.Fatalf("decode: %v", err)
	}
	if !slices.Equal(present, []bool{false, true, false, false, false, false, false, true}) {
		t.Fatalf("present %v", present)
	}
	// A one-block blob's block is named by the blob hash: a record saying
	// otherwise is refused.
	one := newBlob(rand.New(rand.NewPCG(1, 1)), 10)
	if _, _, _, err := decodeRecord(realize.Hash{1}, encodeRecord(newBlobState(one.meta.Blob, 10, one.bm))); err == nil {
		t.Fatal("a one-block record under another hash was accepted")
	}
}

func TestFillFetchesMissingOnly(t *testing.T) {
	b := eightBlocks(12)
	src := newFakeSource(b)
	c := newEnv(t, src, nil).open()
	read(t, c, b, b.offs[2], 200_000)
	used, _ := c.Usage()
	src.reset()
	f, err := os.Create(t.TempDir() + "/out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var last int64
	err = c.Fill(t.Context(), testArena, b.meta, f, func(n int64) {
		if n <= last {
			t.Errorf("progress went from %d to %d", last, n)
		}
		last = n
	})
	if err != nil || last != b.meta.Size {
		t.Fatalf("fill: %v, progress %d", err, last)
	}
	got, _ := os.ReadFile(f.Name())
	if string(got) != string(b.data) {
		t.Fatal("filled file differs")
	}
	if f := src.fetched(b.meta.Blob); slices.Contains(f, 2) || len(f) != 7 {
		t.Fatalf("fetched %v", f)
	}
	if u, _ := c.Usage(); u != used {
		t.Fatalf("fill stored blocks in the cache: %d -> %d", used, u)
	}
}

func TestLimitFromDisk(t *testing.T) {
	tests := []struct {
		name        string
		max, leave  string
		total, free int64
		want        int64
	}{
		{"bytes", "50MiB", "0", 1 << 40, 1 << 39, 50 << 20},
		{"percent", "1%", "0", 1 << 30, 1 << 30, (1 << 30) / 100},
		{"leave", "0", "8MiB", 1 << 30, 10 << 20, 2 << 20},
		{"leave over max", "50MiB", "8MiB", 1 << 30, 10 << 20, 2 << 20},
		{"no room", "50MiB", "20MiB", 1 << 30, 10 << 20, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newEnv(t, newFakeSource(), func(o *CacheOptions) {
				o.Max.UnmarshalText([]byte(tc.max))
				o.Leave.UnmarshalText([]byte(tc.leave))
			})
			c := newCache(env.opt)
			c.statfs = func(string) (int64, int64, error) { return tc.total, tc.free, nil }
			if _, limit := c.Usage(); limit != tc.want {
				t.Fatalf("limit %d, want %d", limit, tc.want)
			}
		})
	}
}

func TestReadAheadOnSequentialReads(t *testing.T) {
	b := eightBlocks(13)
	src := newFakeSource(b)
	c := newEnv(t, src, func(o *CacheOptions) { o.ReadAhead = 4 }).open()
	read(t, c, b, 0, 200_000)
	read(t, c, b, 200_000, 200_000) // sequential: blocks 2-5 follow in the background
	want := []int{0, 1, 2, 3, 4, 5}
	deadline := time.Now().Add(5 * time.Second)
	for n, _ := c.Present(b.meta.Blob); n != 6*200_000 || !slices.Equal(src.fetched(b.meta.Blob), want); n, _ = c.Present(b.meta.Blob) {
		if time.Now().After(deadline) {
			t.Fatalf("fetched %v, want %v", src.fetched(b.meta.Blob), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	hits := c.Stats().Hits
	read(t, c, b, 400_000, 200_000)
	if got := c.Stats().Hits; got != hits+1 {
		t.Fatalf("read-ahead block not served from the cache (hits %d -> %d)", hits, got)
	}
}

func TestDropRemovesFileAndRecord(t *testing.T) {
	b := eightBlocks(14)
	env := newEnv(t, newFakeSource(b), nil)
	c := env.open()
	read(t, c, b, 0, 500_000)
	if err := c.Drop(b.meta.Blob); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.path(b.meta.Blob)); !os.IsNotExist(err) {
		t.Fatal("file left")
	}
	if used, _ := c.Usage(); used != 0 {
		t.Fatalf("used %d", used)
	}
	c.Close()
	if n, _ := env.open().Present(b.meta.Blob); n != 0 {
		t.Fatal("dropped blob back after reopen")
	}
}

type stepClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(2 * accessSaveEvery) // every read is worth recording
	return c.t
}

// TestLRUOrderSurvivesReopen: reopened with a smaller quota, the cache
// evicts the blob read longest ago.
func TestLRUOrderSurvivesReopen(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 15))
	older, newer := newBlob(rng, 600_000), newBlob(rng, 600_000)
	env := newEnv(t, newFakeSource(older, newer), func(o *CacheOptions) { o.Clock = &stepClock{t: time.Unix(1e9, 0)} })
	c := env.open()
	read(t, c, newer, 0, 10)
	read(t, c, older, 0, 10)
	read(t, c, newer, 0, 10) // newer is now the most recent
	c.Close()
	env.opt.Max.Bytes = 1 << 20
	c = env.open()
	if n, _ := c.Present(older.meta.Blob); n != 0 {
		t.Fatal("the blob read longest ago was kept")
	}
	if n, _ := c.Present(newer.meta.Blob); n != 600_000 {
		t.Fatal("the blob read last was evicted")
	}
}
