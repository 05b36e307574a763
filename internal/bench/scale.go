package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/realizefs/realize/history"
	"github.com/realizefs/realize/household"
	"github.com/realizefs/realize/internal/store"
	"github.com/realizefs/realize/real"
)

// The scale stage asks whether one arena of a million small files stays
// usable: how long the first index takes, a rescan that finds nothing, a
// new peer's catch-up (metadata only: it is unpinned), one directory of
// 10k entries listed over NFS, and what it all costs in database and heap.
// Generating the tree is slow, so it is kept under -dir and reused by the
// next run with the same -scale-files.

// scaleDirFiles is the number of files per directory of the scale tree.
const scaleDirFiles = 1000

// scaleWide is the name of the one wide directory listed over NFS.
const scaleWide = "wide"

// scaleLayout is the shape of the tree for a number of files.
type scaleLayout struct {
	files int // in all
	wide  int // in the wide directory; the rest in directories of scaleDirFiles
}

func newScaleLayout(files int) scaleLayout {
	return scaleLayout{files: files, wide: min(10000, files/10)}
}

// scaleTree returns the root of the tree for l under dir, writing it
// unless a complete one is there: the marker beside the root is written
// last, so an interrupted generation is started over.
func scaleTree(dir string, l scaleLayout) (string, error) {
	base := filepath.Join(dir, fmt.Sprintf("scale-tree-%d", l.files))
	root, done := filepath.Join(base, "tree"), filepath.Join(base, "complete")
	if _, err := os.Stat(done); err == nil {
		return root, nil
	}
	if err := os.RemoveAll(base); err != nil {
		return "", err
	}
	if err := genScaleTree(root, l); err != nil {
		return "", err
	}
	syscall.Sync() // no writeback of the new tree during the measurements
	return root, os.WriteFile(done, nil, 0o644)
}

// genScaleTree writes files of 0–1023 random bytes: l.wide of them in one
// directory, the rest scaleDirFiles to a directory.
func genScaleTree(root string, l scaleLayout) error {
	rng := rand.New(rand.NewChaCha8([32]byte{2}))
	buf := make([]byte, 1024)
	write := func(dir string, n int) error {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		for i := range n {
			b := buf[:rng.IntN(len(buf))]
			for j := range b {
				b[j] = byte(rng.Uint32())
			}
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%05d", i)), b, 0o644); err != nil {
				return err
			}
		}
		return nil
	}
	if err := write(filepath.Join(root, scaleWide), l.wide); err != nil {
		return err
	}
	left := l.files - l.wide
	for d := 0; left > 0; d++ {
		n := min(left, scaleDirFiles)
		if err := write(filepath.Join(root, fmt.Sprintf("d%04d", d)), n); err != nil {
			return err
		}
		left -= n
	}
	return nil
}

// scaleRun is what one pass of the scale stage measured.
type scaleRun struct {
	index, rescan float64 // seconds: first index (watching), no-change rescan (median)
	heapPerFile   float64 // bytes of live Go heap per file, watching
	dbA, dbB      int64   // database file sizes, bytes
	start         float64 // seconds for the daemon to start on the indexed tree and rescan it
	catchUp       float64 // seconds until a new unpinned peer lists every file
	cpuA, cpuB    float64 // CPU seconds each daemon spent meanwhile
	snapshot      float64 // seconds for the same by snapshot, in process
	readdirUnreal float64 // seconds for READDIRPLUS of the wide directory, unreal files (median)
	readdirReal   float64 // the same on the peer holding the files
	rssA, rssB    int64   // anonymous resident memory of each daemon at the end, bytes
	entries       int     // in the wide directory
}

// benchScale runs the scale stage once (the tree is too big to index
// several times; the repeatable figures are medians of o.Runs).
func benchScale(ctx context.Context, o Options) ([]Row, error) {
	if o.ScaleFiles <= 0 {
		return nil, nil
	}
	l := newScaleLayout(o.ScaleFiles)
	root, err := scaleTree(o.Dir, l)
	if err != nil {
		return nil, fmt.Errorf("generating the tree: %w", err)
	}
	bin, err := buildRealize(ctx, o)
	if err != nil {
		return nil, err
	}
	dir, err := freshDir(o, "scale-run")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir) // two databases and a peer's home: gigabytes at 1M
	var r scaleRun
	if err := scaleOnce(ctx, o, bin, dir, root, l, &r); err != nil {
		return nil, err
	}
	return scaleRows(l, r), nil
}

func scaleOnce(ctx context.Context, o Options, bin, dir, root string, l scaleLayout, r *scaleRun) error {
	nfsA, err := freeAddr("tcp")
	if err != nil {
		return err
	}
	a, err := newDaemonPeerAt(ctx, bin, filepath.Join(dir, "a"), "alpha", root, nfsA, true)
	if err != nil {
		return err
	}
	defer a.stop()
	// The first index runs in process, into alpha's own database, so the
	// heap it takes can be measured; the daemon then starts on it.
	if err := scaleIndex(ctx, o, a, r); err != nil {
		return err
	}
	if r.dbA, err = fileSize(filepath.Join(a.base, "data", store.FileName)); err != nil {
		return err
	}
	if err := scaleSnapshot(ctx, o, a, r); err != nil {
		return err
	}
	start := time.Now()
	if err := a.start(); err != nil {
		return err
	}
	if err := a.waitScannedDaemon(ctx, time.Minute+time.Duration(l.files)*time.Millisecond); err != nil {
		return err
	}
	r.start = time.Since(start).Seconds()
	sa, err := a.status(ctx)
	if err != nil {
		return err
	}
	nfsB, err := freeAddr("tcp")
	if err != nil {
		return err
	}
	b, err := newDaemonPeerAt(ctx, bin, filepath.Join(dir, "b"), "bravo", filepath.Join(dir, "b", "home"), nfsB, false)
	if err != nil {
		return err
	}
	defer b.stop()
	if err := scaleCatchUp(ctx, a, b, sa.Arenas[0].Files, r); err != nil {
		return fmt.Errorf("%w\nalpha log:\n%s\nbravo log:\n%s", err, a.logTail(), b.logTail())
	}
	if r.readdirUnreal, r.entries, err = timeReaddir(ctx, o, nfsB, l.wide); err != nil {
		return fmt.Errorf("bravo: %w", err)
	}
	if r.readdirReal, _, err = timeReaddir(ctx, o, nfsA, l.wide); err != nil {
		return fmt.Errorf("alpha: %w", err)
	}
	r.rssA, r.rssB = anonRSS(a), anonRSS(b)
	a.stop()
	b.stop()
	r.dbB, err = fileSize(filepath.Join(b.base, "data", store.FileName))
	return err
}

// scaleIndex indexes the tree with the watcher running (the daemon's
// steady state) into alpha's database, measures the heap that holds, and
// times rescans that find nothing to do.
func scaleIndex(ctx context.Context, o Options, a *daemonPeer, r *scaleRun) error {
	data := filepath.Join(a.base, "data")
	id, err := household.LoadIdentity(household.KeyPath(data))
	if err != nil {
		return err
	}
	before := liveHeap()
	db, err := store.Open(ctx, data, store.Options{Peer: id.ID()})
	if err != nil {
		return err
	}
	defer db.Close()
	arena, err := real.NewArena(real.ArenaOptions{Name: "home", Root: a.arena, DB: db,
		Log: history.New(id.ID(), id, nil), Self: id.ID()})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- arena.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if err := waitScanned(ctx, arena); err != nil {
		return err
	}
	r.index = time.Since(start).Seconds()
	st, err := arena.Status()
	if err != nil {
		return err
	}
	r.heapPerFile = float64(liveHeap()-before) / float64(st.Counts.Files)
	r.rescan, err = timeIt(o.Runs, func(int) error { return arena.ScanAll(ctx) })
	return err
}

// waitScannedDaemon waits until the daemon has finished its start-up scan.
func (p *daemonPeer) waitScannedDaemon(ctx context.Context, limit time.Duration) error {
	err := waitUntil(ctx, limit, 100*time.Millisecond, p.name+" scanned", func() (bool, error) {
		s, err := p.status(ctx)
		if err != nil {
			return false, nil // not answering yet
		}
		return !s.Arenas[0].LastScan.IsZero() && !s.Arenas[0].Scanning && s.Arenas[0].PendingHash == 0, nil
	})
	if err != nil {
		return fmt.Errorf("%w\n%s daemon log:\n%s", err, p.name, p.logTail())
	}
	return nil
}

// scaleCatchUp introduces a new, unpinned peer b to a and times until b
// lists as many files as a has.
func scaleCatchUp(ctx context.Context, a, b *daemonPeer, files int64, r *scaleRun) error {
	for _, pq := range [][2]*daemonPeer{{a, b}, {b, a}} {
		if _, err := pq[0].cli(ctx, "peer", "add", pq[1].name, pq[1].id, pq[1].listen); err != nil {
			return err
		}
	}
	start, cpuA := time.Now(), cpuSeconds(a)
	if err := b.start(); err != nil {
		return err
	}
	limit := time.Minute + time.Duration(files)*time.Millisecond
	var last int64
	err := waitUntil(ctx, limit, 200*time.Millisecond, fmt.Sprintf("%d files listed on %s", files, b.name), func() (bool, error) {
		s, err := b.status(ctx)
		if err != nil {
			return false, nil
		}
		last = s.Arenas[0].Files
		return last >= files, nil
	})
	if err != nil {
		return fmt.Errorf("%w (%d listed)", err, last)
	}
	r.catchUp = time.Since(start).Seconds()
	r.cpuA, r.cpuB = cpuSeconds(a)-cpuA, cpuSeconds(b)
	return nil
}

// cpuSeconds returns the CPU time (user and system) the daemon has used,
// or 0 where /proc does not tell. Under a loaded machine it is steadier
// than wall time.
func cpuSeconds(p *daemonPeer) float64 {
	if p.cmd == nil {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses: state is
	// the first, utime the 12th, stime the 13th (in clock ticks, 100/s).
	_, rest, ok := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return 0
	}
	var ut, st float64
	fmt.Sscan(f[11], &ut)
	fmt.Sscan(f[12], &st)
	return (ut + st) / 100
}

// timeReaddir lists the wide directory through the NFS server at addr,
// o.Runs times, each on a fresh mount (the client caches listings), and
// returns the median seconds and the entries of the last listing.
func timeReaddir(ctx context.Context, o Options, addr string, want int) (float64, int, error) {
	n := 0
	t, err := timeIt(o.Runs, func(int) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		tg, closeFn, err := mountNFS(addr)
		if err != nil {
			return err
		}
		defer closeFn()
		es, err := tg.ReadDirPlus("/home/" + scaleWide)
		if err != nil {
			return err
		}
		if n = len(es); n != want {
			return fmt.Errorf("READDIRPLUS of /home/%s: %d entries, want %d", scaleWide, n, want)
		}
		return nil
	})
	return t, n, err
}

// anonRSS returns the daemon's anonymous resident memory (heap, stacks:
// not the database's mapped pages), or 0 where /proc does not tell.
func anonRSS(p *daemonPeer) int64 {
	if p.cmd == nil {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "RssAnon:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb << 10
		}
	}
	return 0
}

func fileSize(path string) (int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	if !fi.Mode().IsRegular() {
		return 0, errors.New(path + ": not a file")
	}
	return fi.Size(), nil
}

func scaleRows(l scaleLayout, r scaleRun) []Row {
	k := countName(l.files)
	files := float64(l.files)
	rows := []Row{
		{Name: "scale: first index " + k + " files (watching)", Value: r.index, Unit: "s"},
		{Name: "scale: first index " + k + " files, rate", Value: files / r.index, Unit: "files/s"},
		{Name: "scale: no-change rescan " + k + " files", Value: r.rescan, Unit: "s"},
		{Name: "scale: Go heap per file (" + k + ", watching)", Value: r.heapPerFile, Unit: "B", Goal: "<= 300 B", Met: met(r.heapPerFile <= 300)},
		{Name: "scale: database, index + history (" + k + ")", Value: float64(r.dbA) / 1e6, Unit: "MB"},
		{Name: "scale: database per file", Value: float64(r.dbA) / files, Unit: "B"},
		{Name: "scale: daemon start on " + k + " indexed files (open, check, rescan)", Value: r.start, Unit: "s"},
		{Name: "scale: catch-up of a new unpinned peer to " + k + " listed", Value: r.catchUp, Unit: "s"},
		{Name: "scale: catch-up rate", Value: files / r.catchUp, Unit: "files/s"},
		{Name: "scale: catch-up CPU, holder", Value: r.cpuA, Unit: "s"},
		{Name: "scale: catch-up CPU, new peer", Value: r.cpuB, Unit: "s"},
		{Name: "scale: catch-up by snapshot to " + k + " listed (in process)", Value: r.snapshot, Unit: "s"},
		{Name: "scale: new peer's database (" + k + " unreal)", Value: float64(r.dbB) / 1e6, Unit: "MB"},
		{Name: fmt.Sprintf("scale: nfs READDIRPLUS of %d unreal entries", r.entries), Value: r.readdirUnreal * 1000, Unit: "ms"},
		{Name: fmt.Sprintf("scale: nfs READDIRPLUS of %d real entries", r.entries), Value: r.readdirReal * 1000, Unit: "ms"},
	}
	if r.rssA > 0 {
		rows = append(rows,
			Row{Name: "scale: daemon anonymous memory per file, holder", Value: float64(r.rssA) / files, Unit: "B"},
			Row{Name: "scale: daemon anonymous memory per file, new peer", Value: float64(r.rssB) / files, Unit: "B"})
	}
	return rows
}

// countName is 1M, 100k or 1234 files.
func countName(n int) string {
	switch {
	case n >= 1e6 && n%1e6 == 0:
		return fmt.Sprintf("%dM", n/1e6)
	case n >= 1e3 && n%1e3 == 0:
		return fmt.Sprintf("%dk", n/1e3)
	}
	return fmt.Sprint(n)
}
