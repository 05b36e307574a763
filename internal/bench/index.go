package bench

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/history"
	"github.com/realizefs/realize/internal/store"
	"github.com/realizefs/realize/real"
)

// genTree writes files of random (incompressible) content totalling about
// bytes into root, 100 files per directory.
func genTree(root string, files int, bytes int64) error {
	rng := rand.NewChaCha8([32]byte{1})
	size := bytes / int64(files)
	buf := make([]byte, size)
	for i := 0; i < files; i++ {
		dir := filepath.Join(root, fmt.Sprintf("d%04d", i/100))
		if i%100 == 0 {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
		}
		rng.Read(buf)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%06d", i)), buf, 0o644); err != nil {
			return err
		}
	}
	return nil
}

type benchSigner struct{ priv ed25519.PrivateKey }

func (s benchSigner) ID() (p realize.PeerID) {
	copy(p[:], s.priv.Public().(ed25519.PublicKey))
	return p
}
func (s benchSigner) Sign(m []byte) ([]byte, error) { return ed25519.Sign(s.priv, m), nil }

// indexer is one arena over root with a fresh database.
type indexer struct {
	db    *store.DB
	arena *real.Arena
}

func newIndexer(ctx context.Context, o Options, root string) (*indexer, error) {
	s := benchSigner{ed25519.NewKeyFromSeed(make([]byte, 32))}
	data, err := freshDir(o, "data")
	if err != nil {
		return nil, err
	}
	db, err := store.Open(ctx, data, store.Options{Peer: s.ID()})
	if err != nil {
		return nil, err
	}
	a, err := real.NewArena(real.ArenaOptions{Name: "bench", Root: root, DB: db,
		Log: history.New(s.ID(), s, nil), Self: s.ID()})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &indexer{db: db, arena: a}, nil
}

// benchIndex: first indexing of a tree (hash + block map + index +
// history), against b3sum over the same files from the same (warm) cache:
// the many-files tree the goal is set for, and the same bytes in a few big
// files, where content-defined chunking (a second BLAKE3 pass) applies.
func benchIndex(ctx context.Context, o Options) ([]Row, error) {
	rows, err := benchIndexTree(ctx, o, o.IndexFiles, o.IndexBytes, ">= 0.5x")
	if err != nil {
		return nil, err
	}
	big, err := benchIndexTree(ctx, o, 4, o.IndexBytes, "")
	return append(rows, big...), err
}

func benchIndexTree(ctx context.Context, o Options, files int, bytes int64, goal string) ([]Row, error) {
	root, err := freshDir(o, "index-tree")
	if err != nil {
		return nil, err
	}
	if err := genTree(root, files, bytes); err != nil {
		return nil, err
	}
	syscall.Sync() // no writeback of the new tree during the measurements
	mb := float64(bytes) / 1e6
	b3 := func(parallel string) func(int) error {
		return func(int) error {
			cmd := exec.CommandContext(ctx, "sh", "-c",
				`find "$1" -type f -print0 | xargs -0 -P "$2" -n 2000 b3sum --no-names >/dev/null`, "sh", root, parallel)
			cmd.Stderr = os.Stderr
			return cmd.Run()
		}
	}
	name := fmt.Sprintf("index %d files / %s", files, human(bytes))
	index := func(int) error {
		ix, err := newIndexer(ctx, o, root)
		if err != nil {
			return err
		}
		defer ix.db.Close()
		return ix.arena.ScanAll(ctx)
	}
	if _, err := exec.LookPath("b3sum"); err != nil {
		t, err := timeIt(o.Runs, index)
		return []Row{{Name: name, Value: mb / t, Unit: "MB/s", Baseline: "b3sum missing"}}, err
	}
	// Interleave the contenders so that each sees the same machine state
	// (page cache, writeback, a noisy neighbour) rather than one getting
	// the quiet minute and the other the busy one.
	var tB3, tB3p, tIndex []float64
	for i := 0; i <= o.Runs; i++ {
		for _, c := range []struct {
			out *[]float64
			f   func(int) error
		}{{&tB3, b3("1")}, {&tIndex, index}, {&tB3p, b3(fmt.Sprint(runtime.NumCPU()))}} {
			t, err := timeIt(1, c.f)
			if err != nil {
				return nil, err
			}
			if i > 0 { // run 0 warms the page cache
				*c.out = append(*c.out, t)
			}
		}
	}
	var rows []Row
	ti, tb, tbp := median(tIndex), median(tB3), median(tB3p)
	rows = append(rows,
		Row{Name: name + ": b3sum", Value: mb / tb, Unit: "MB/s"},
		Row{Name: fmt.Sprintf("%s: b3sum x%d processes", name, runtime.NumCPU()), Value: mb / tbp, Unit: "MB/s"},
		Row{Name: name, Value: mb / ti, Unit: "MB/s", Baseline: "b3sum", Ratio: tb / ti, Goal: goal},
		Row{Name: name + " vs b3sum x" + fmt.Sprint(runtime.NumCPU()), Value: mb / ti, Unit: "MB/s",
			Baseline: "parallel b3sum", Ratio: tbp / ti},
	)
	if goal != "" {
		rows[2].Met = met(tb/ti >= 0.5)
	}
	return rows, nil
}

// benchRescan: index a tree of many small files with the watcher running
// (the daemon's steady state), then measure heap per file and the time of
// a rescan that finds nothing to do.
func benchRescan(ctx context.Context, o Options) ([]Row, error) {
	root, err := freshDir(o, "rescan-tree")
	if err != nil {
		return nil, err
	}
	if err := genTree(root, o.RescanFiles, int64(o.RescanFiles)*64); err != nil {
		return nil, err
	}
	before := liveHeap()
	ix, err := newIndexer(ctx, o, root)
	if err != nil {
		return nil, err
	}
	defer ix.db.Close()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- ix.arena.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if err := waitScanned(ctx, ix.arena); err != nil {
		return nil, err
	}
	tFirst := time.Since(start).Seconds()
	perFile := float64(liveHeap()-before) / float64(o.RescanFiles)
	tRescan, err := timeIt(o.Runs, func(int) error { return ix.arena.ScanAll(ctx) })
	if err != nil {
		return nil, err
	}
	k := fmt.Sprintf("%dk", o.RescanFiles/1000)
	return []Row{
		{Name: "first index " + k + " small files", Value: float64(o.RescanFiles) / tFirst, Unit: "files/s"},
		{Name: "no-change rescan " + k + " files", Value: tRescan, Unit: "s", Goal: "<= 2 s (100k)", Met: met(tRescan <= 2)},
		{Name: "Go heap in use per indexed file (" + k + ", watching)", Value: perFile, Unit: "B", Goal: "<= 300 B", Met: met(perFile <= 300)},
	}, nil
}

// liveHeap returns the bytes of live heap objects: after two collections
// (sync.Pool contents survive one) nothing unreachable is counted.
func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// waitScanned waits for the arena's first full scan to finish.
func waitScanned(ctx context.Context, a *real.Arena) error {
	for {
		st, err := a.Status()
		if err != nil {
			return err
		}
		if !st.LastScan.IsZero() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.0f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", n>>10)
}
