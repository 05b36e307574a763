package household

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/history"
	"github.com/realizefs/realize/internal/store"
	"github.com/realizefs/realize/real"
	"github.com/zeebo/blake3"
)

// TestBlockThroughput fetches a 256 MiB blob between two hosts over
// loopback QUIC in runs of blocks, several layouts (the old 8 runs of 16
// at once; one stream for the whole blob, as consensus.BlockFetcher now
// does with one peer; two and four long runs), each block verified, and
// logs MB/s and CPU seconds per GB next to a raw stream measured in the
// same run: the transport's share of a sync. CPU per byte says more than
// MB/s on a machine shared with other work. Run only when
// REALIZE_BLOCK_BENCH is set.
func TestBlockThroughput(t *testing.T) {
	if os.Getenv("REALIZE_BLOCK_BENCH") == "" {
		t.Skip("set REALIZE_BLOCK_BENCH=1 to measure")
	}
	const size = 256 << 20
	a, b := newNode(t, "a", true), newNode(t, "b", true)
	db, err := store.Open(t.Context(), t.TempDir(), store.Options{Peer: a.ident.ID()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	log := history.New(a.ident.ID(), a.ident, nil)
	root := t.TempDir()
	content := make([]byte, size)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < size; i += 8 {
		v := rng.Uint64()
		for k := 0; k < 8; k++ {
			content[i+k] = byte(v >> (8 * k))
		}
	}
	os.WriteFile(filepath.Join(root, "f.bin"), content, 0o644)
	ar, err := real.NewArena(real.ArenaOptions{Name: "x", Root: root, DB: db, Log: log, Self: a.ident.ID()})
	if err != nil {
		t.Fatal(err)
	}
	if err := ar.ScanAll(t.Context()); err != nil {
		t.Fatal(err)
	}
	blob := realize.Hash(blake3.Sum256(content))
	if err := RegisterSync(a.mux, &SyncData{DB: db, Log: log, Arena: func(realize.ArenaName) *real.Arena { return ar }}); err != nil {
		t.Fatal(err)
	}
	if err := RegisterSync(b.mux, &SyncData{}); err != nil {
		t.Fatal(err)
	}
	sharing(t, a, b, "x")
	src := Blocks{Host: b.host}
	bm, err := src.BlockMap(t.Context(), a.ident.ID(), "x", blob)
	if err != nil {
		t.Fatal(err)
	}
	offsets := make([]int64, len(bm)+1)
	for i, blk := range bm {
		offsets[i+1] = offsets[i] + int64(blk.Size)
	}
	for k, cfg := range [][2]int{{8, 16}, {8, 16}, {1, len(bm)}, {1, len(bm)}, {2, (len(bm) + 1) / 2}, {4, (len(bm) + 3) / 4}} {
		inFlight, per := cfg[0], cfg[1]
		// The first run writes into a file, as a fetch does; the others
		// measure the network alone.
		dst, err := os.Create(filepath.Join(t.TempDir(), "dst"))
		if err != nil {
			t.Fatal(err)
		}
		dst.Truncate(size)
		work := make(chan int)
		var wg sync.WaitGroup
		start, cpu0 := time.Now(), cpuSeconds()
		for w := 0; w < inFlight; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for first := range work {
					n := min(per, len(bm)-first)
					err := src.ReadBlocks(t.Context(), a.ident.ID(), "x", blob, first, n, func(i int, data []byte) error {
						if realize.Hash(blake3.Sum256(data)) != bm[i].Hash {
							t.Error("bad block")
						}
						if k != 1 && k != 3 {
							_, err := dst.WriteAt(data, offsets[i])
							return err
						}
						return nil
					})
					if err != nil {
						t.Error(err)
					}
				}
			}()
		}
		for first := 0; first < len(bm); first += per {
			work <- first
		}
		close(work)
		wg.Wait()
		t.Logf("in flight %d, runs of %d, written %v: %.0f MB/s, %.2f CPU s/GB", inFlight, per, k != 1 && k != 3,
			size/time.Since(start).Seconds()/1e6, (cpuSeconds()-cpu0)/(size/1e9))
		dst.Close()
	}
	cpu0 := cpuSeconds()
	bps, err := RawThroughput(t.Context(), size)
	t.Logf("raw: %.0f MB/s, %.2f CPU s/GB (%v)", bps/1e6, (cpuSeconds()-cpu0)/(size/1e9), err)
}

// cpuSeconds is the CPU time (user and system) this process has used.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
