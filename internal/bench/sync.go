package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/realizefs/realize/household"
	"github.com/realizefs/realize/internal/config"
	"github.com/realizefs/realize/real"
)

// smallFileSize is the size of each file of the many-small-files sync.
const smallFileSize = 4 << 10

// syncRun is what one run of benchSync measured.
type syncRun struct {
	big, edit, tree float64 // seconds until B had it
	editReceived    int64   // bytes B fetched for the edit
	latencies       []float64
	// Baselines, measured in the same run on the same data.
	rawMBps, rsyncBig, rsyncTree float64
}

// benchSync: two real daemons on loopback, A→B. Each run starts a fresh
// pair in fresh directories and measures, in order: one big file, an
// edit inside it, a tree of small files, and the latency of small edits;
// then, with the daemons stopped, the baselines on the same data: a raw
// QUIC stream and an rsync daemon. Interleaving keeps each contender
// under the same machine state.
func benchSync(ctx context.Context, o Options) ([]Row, error) {
	if o.SyncBytes <= 0 || o.SyncFiles <= 0 {
		return nil, nil
	}
	bin, err := buildRealize(ctx, o)
	if err != nil {
		return nil, err
	}
	rs, err := startRsyncd(ctx, o)
	if err != nil {
		return nil, err
	}
	defer rs.stop()
	var runs []syncRun
	for i := 0; i < o.Runs; i++ {
		r, err := syncOnce(ctx, o, bin, rs, i)
		if err != nil {
			return nil, fmt.Errorf("sync run %d: %w", i, err)
		}
		runs = append(runs, r)
	}
	return syncRows(o, runs, rs != nil), nil
}

func syncOnce(ctx context.Context, o Options, bin string, rs *rsyncd, run int) (syncRun, error) {
	var r syncRun
	dir, err := freshDir(o, "sync-run")
	if err != nil {
		return r, err
	}
	a, b, err := startPair(ctx, bin, dir)
	defer a.stop()
	defer b.stop()
	if err != nil {
		return r, err
	}
	if err := realizeFigures(ctx, o, &r, dir, a, b, run); err != nil {
		return r, fmt.Errorf("%w\nalpha log:\n%s\nbravo log:\n%s", err, a.logTail(), b.logTail())
	}
	a.stop() // the baselines get a machine without daemons
	b.stop()
	return r, baselineFigures(ctx, o, &r, rs, a.arena, run)
}

func realizeFigures(ctx context.Context, o Options, r *syncRun, dir string, a, b *daemonPeer, run int) error {
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], uint64(run)+1)
	rng := rand.NewChaCha8(seed) // content differs per run, but is the same each time the bench runs
	var err error
	if r.big, err = syncBig(ctx, o, a, b, rng); err != nil {
		return err
	}
	if r.editReceived, r.edit, err = syncEdit(ctx, o, a, b, rng); err != nil {
		return err
	}
	if r.tree, err = syncTree(ctx, o, dir, a, b); err != nil {
		return err
	}
	r.latencies, err = syncLatency(ctx, o, a, b, rng)
	return err
}

func baselineFigures(ctx context.Context, o Options, r *syncRun, rs *rsyncd, src string, run int) error {
	bps, err := household.RawThroughput(ctx, o.SyncBytes)
	if err != nil {
		return err
	}
	r.rawMBps = bps / 1e6
	if rs == nil {
		return nil
	}
	syscall.Sync() // as before the daemons' measurements: no writeback of earlier work
	if r.rsyncBig, err = rs.push(ctx, filepath.Join(src, bigName), fmt.Sprintf("run%d-big", run)); err != nil {
		return err
	}
	syscall.Sync()
	r.rsyncTree, err = rs.push(ctx, filepath.Join(src, treeName)+"/", fmt.Sprintf("run%d-tree", run))
	return err
}

const (
	bigName  = "big.bin"
	treeName = "small"
)

// transferLimit bounds a wait for n bytes to cross: generous (5 MB/s and a
// minute), since it only exists so that a broken build cannot hang.
func transferLimit(n int64) time.Duration {
	return time.Minute + time.Duration(n/5e6)*time.Second
}

// syncBig writes the big file into A's arena while both daemons run, as a
// user copying a file in would, and times from the moment it is complete
// on A's disk (written and fsynced) until B's copy is there at full size
// (placed by a rename, so full size means complete). The content is
// compared once, at the end.
func syncBig(ctx context.Context, o Options, a, b *daemonPeer, rng *rand.ChaCha8) (float64, error) {
	syscall.Sync() // no writeback of earlier runs during the measurement
	src, dst := filepath.Join(a.arena, bigName), filepath.Join(b.arena, bigName)
	if err := writeRandom(src, o.SyncBytes, rng); err != nil {
		return 0, err
	}
	start := time.Now()
	err := waitUntil(ctx, transferLimit(o.SyncBytes), 5*time.Millisecond, "the big file on B", func() (bool, error) {
		fi, err := os.Stat(dst)
		return err == nil && fi.Size() == o.SyncBytes, nil
	})
	secs := time.Since(start).Seconds()
	if err != nil {
		return 0, err
	}
	return secs, sameContent(src, dst)
}

// editSize is the size of the in-place edit: 1 MiB, less in a tiny file.
func editSize(o Options) int64 { return min(1<<20, o.SyncBytes/8) }

// syncEdit overwrites editSize bytes at a random offset of A's big file,
// in place, and reports the bytes B fetched until its copy matched again
// (the delta of its received_bytes counter) and how long that took.
func syncEdit(ctx context.Context, o Options, a, b *daemonPeer, rng *rand.ChaCha8) (int64, float64, error) {
	if err := waitIdleBoth(ctx, a, b); err != nil {
		return 0, 0, err
	}
	src, dst := filepath.Join(a.arena, bigName), filepath.Join(b.arena, bigName)
	before, err := settled(ctx, b, src, dst)
	if err != nil {
		return 0, 0, err
	}
	n := editSize(o)
	off := int64(rng.Uint64() % uint64(o.SyncBytes-n+1))
	patch := make([]byte, n)
	rng.Read(patch)
	if err := patchFile(src, off, patch); err != nil {
		return 0, 0, err
	}
	start := time.Now()
	got := make([]byte, n)
	err = waitUntil(ctx, transferLimit(o.SyncBytes), 5*time.Millisecond, "the edit on B", func() (bool, error) {
		f, err := os.Open(dst)
		if err != nil {
			return false, nil
		}
		defer f.Close()
		_, err = f.ReadAt(got, off)
		return err == nil && bytes.Equal(got, patch), nil
	})
	secs := time.Since(start).Seconds()
	if err != nil {
		return 0, 0, err
	}
	if err := sameContent(src, dst); err != nil {
		return 0, 0, err
	}
	after, err := b.status(ctx)
	return after.Arenas[0].Received - before.Arenas[0].Received, secs, err
}

// settled waits until B's copy of the big file matches A's and B's
// received counter has stopped moving, and returns B's status then: A may
// have recorded an intermediate version of the file while it was being
// written, whose transfer must not be counted as the edit's.
func settled(ctx context.Context, b *daemonPeer, src, dst string) (peerStatus, error) {
	var last peerStatus
	seen := false
	err := waitUntil(ctx, 2*time.Minute, 500*time.Millisecond, "b's copy to settle", func() (bool, error) {
		st, err := b.status(ctx)
		if err != nil {
			return false, err
		}
		same := seen && st.Arenas[0].Received == last.Arenas[0].Received && sameContent(src, dst) == nil
		last, seen = st, true
		return same, nil
	})
	return last, err
}

// syncTree writes the small files outside the arena, then moves the tree
// in with one rename: the tree appears complete at once, as it does for
// rsync, so the time covers all of Realize's work (scan, hash, record,
// transfer, place) and none of it hides behind the writing.
func syncTree(ctx context.Context, o Options, dir string, a, b *daemonPeer) (float64, error) {
	staging := filepath.Join(dir, "staging", treeName)
	if err := genTree(staging, o.SyncFiles, int64(o.SyncFiles)*smallFileSize); err != nil {
		return 0, err
	}
	syscall.Sync()
	if err := waitIdleBoth(ctx, a, b); err != nil {
		return 0, err
	}
	src, dst := filepath.Join(a.arena, treeName), filepath.Join(b.arena, treeName)
	if err := os.Rename(staging, src); err != nil {
		return 0, err
	}
	start := time.Now()
	limit := transferLimit(int64(o.SyncFiles)*smallFileSize) + time.Duration(o.SyncFiles)*10*time.Millisecond
	err := waitUntil(ctx, limit, 20*time.Millisecond, "the small files on B", func() (bool, error) {
		return countFiles(dst) >= o.SyncFiles, nil
	})
	secs := time.Since(start).Seconds()
	if err != nil {
		return 0, fmt.Errorf("%w (%d of %d there)", err, countFiles(dst), o.SyncFiles)
	}
	return secs, sameSample(src, dst, 100)
}

// syncLatency writes o.SyncEdits small new files on A, one at a time, and
// times each until B's disk has its content, polling every 5 ms.
func syncLatency(ctx context.Context, o Options, a, b *daemonPeer, rng *rand.ChaCha8) ([]float64, error) {
	if err := waitIdleBoth(ctx, a, b); err != nil {
		return nil, err
	}
	var ms []float64
	for k := 0; k < o.SyncEdits; k++ {
		name := fmt.Sprintf("latency-%03d.txt", k)
		want := fmt.Appendf(nil, "edit %d: %x\n", k, rng.Uint64())
		if err := os.WriteFile(filepath.Join(a.arena, name), want, 0o644); err != nil {
			return nil, err
		}
		start := time.Now()
		err := waitUntil(ctx, 30*time.Second, 5*time.Millisecond, name+" on B", func() (bool, error) {
			got, err := os.ReadFile(filepath.Join(b.arena, name))
			return err == nil && bytes.Equal(got, want), nil
		})
		if err != nil {
			return nil, err
		}
		ms = append(ms, float64(time.Since(start).Microseconds())/1000)
		// A random pause, so that the samples do not lock into step with
		// the daemons' timers.
		if err := sleep(ctx, time.Duration(50+rng.Uint64()%200)*time.Millisecond); err != nil {
			return nil, err
		}
	}
	return ms, nil
}

func waitIdleBoth(ctx context.Context, a, b *daemonPeer) error {
	for _, p := range []*daemonPeer{a, b} {
		if err := p.waitIdle(ctx, 2*time.Minute); err != nil {
			return err
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// writeRandom writes n incompressible bytes to a new file and fsyncs it.
func writeRandom(path string, n int64, rng *rand.ChaCha8) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for left := n; left > 0; {
		chunk := buf[:min(int64(len(buf)), left)]
		rng.Read(chunk)
		if _, err := f.Write(chunk); err != nil {
			return err
		}
		left -= int64(len(chunk))
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}

// patchFile overwrites part of a file in place and fsyncs it.
func patchFile(path string, off int64, patch []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteAt(patch, off); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}

// sameContent compares two files byte for byte.
func sameContent(a, b string) error {
	fa, err := os.Open(a)
	if err != nil {
		return err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return err
	}
	defer fb.Close()
	ba, bb := make([]byte, 1<<20), make([]byte, 1<<20)
	for off := int64(0); ; off += int64(len(ba)) {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return fmt.Errorf("%s and %s differ in the MiB at offset %d", a, b, off)
		}
		if errors.Is(ea, io.EOF) || errors.Is(ea, io.ErrUnexpectedEOF) {
			return nil
		}
		if ea != nil {
			return ea
		}
		if eb != nil {
			return eb
		}
	}
}

// countFiles counts the regular files one and two levels below root (the
// layout genTree writes), leaving out the daemon's temporary files.
func countFiles(root string) int {
	dirs, _ := os.ReadDir(root)
	n := 0
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		ents, _ := os.ReadDir(filepath.Join(root, d.Name()))
		for _, e := range ents {
			if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), real.ReservedPrefix) {
				n++
			}
		}
	}
	return n
}

// sameSample compares about n files of the tree under a with b's copies.
func sameSample(a, b string, n int) error {
	var paths []string
	err := filepath.WalkDir(a, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			paths = append(paths, p)
		}
		return err
	})
	if err != nil {
		return err
	}
	step := max(1, len(paths)/n)
	for i := 0; i < len(paths); i += step {
		rel, _ := filepath.Rel(a, paths[i])
		if err := sameContent(paths[i], filepath.Join(b, rel)); err != nil {
			return err
		}
	}
	return nil
}

// syncRows turns the runs into table rows: medians over runs, and the
// latency percentiles over all samples of all runs.
func syncRows(o Options, runs []syncRun, haveRsync bool) []Row {
	col := func(f func(syncRun) float64) float64 {
		var xs []float64
		for _, r := range runs {
			xs = append(xs, f(r))
		}
		return median(xs)
	}
	var rows []Row
	rows = append(rows, bigRows(o, col(func(r syncRun) float64 { return r.big }),
		col(func(r syncRun) float64 { return r.rawMBps }), col(func(r syncRun) float64 { return r.rsyncBig }), haveRsync)...)
	rows = append(rows, treeRows(o, col(func(r syncRun) float64 { return r.tree }),
		col(func(r syncRun) float64 { return r.rsyncTree }), haveRsync)...)
	rows = append(rows, editRows(o, col(func(r syncRun) float64 { return float64(r.editReceived) }),
		col(func(r syncRun) float64 { return r.edit }))...)
	var lat []float64
	for _, r := range runs {
		lat = append(lat, r.latencies...)
	}
	return append(rows, latencyRows(lat)...)
}

// vsRsync fills in a row's comparison with rsync; ratio > 1 is Realize
// ahead.
func vsRsync(r Row, ratio float64, haveRsync bool, goal float64) Row {
	if !haveRsync {
		r.Baseline = "rsync missing"
		return r
	}
	r.Baseline, r.Ratio = "rsync daemon, push", ratio
	if goal > 0 {
		r.Met = met(ratio >= goal)
	}
	return r
}

func bigRows(o Options, t, rawMBps, tRsync float64, haveRsync bool) []Row {
	mb, size := float64(o.SyncBytes)/1e6, human(o.SyncBytes)
	rows := []Row{{Name: "raw QUIC stream " + size, Value: rawMBps, Unit: "MB/s"}}
	if haveRsync {
		rows = append(rows, Row{Name: "rsync daemon push " + size + " file (--fsync)", Value: mb / tRsync, Unit: "MB/s"})
	}
	name := "sync " + size + " file A→B"
	return append(rows,
		Row{Name: name, Value: mb / t, Unit: "MB/s", Baseline: "raw QUIC", Ratio: mb / t / rawMBps,
			Goal: ">= 0.7x", Met: met(mb/t/rawMBps >= 0.7)},
		vsRsync(Row{Name: name + " vs rsync", Value: mb / t, Unit: "MB/s", Goal: ">= 1x"}, tRsync/t, haveRsync, 1))
}

func treeRows(o Options, t, tRsync float64, haveRsync bool) []Row {
	name := fmt.Sprintf("sync %d files of 4 KiB A→B", o.SyncFiles)
	n := float64(o.SyncFiles)
	var rows []Row
	if haveRsync {
		rows = append(rows, Row{Name: fmt.Sprintf("rsync daemon push %d files (--fsync)", o.SyncFiles), Value: n / tRsync, Unit: "files/s"})
	}
	return append(rows,
		vsRsync(Row{Name: name, Value: t, Unit: "s"}, tRsync/t, haveRsync, 0),
		Row{Name: name + ": rate", Value: n / t, Unit: "files/s"})
}

func editRows(o Options, received, t float64) []Row {
	name := fmt.Sprintf("%s edit in %s file", human(editSize(o)), human(o.SyncBytes))
	mib := received / (1 << 20)
	return []Row{
		{Name: name + ": received by B", Value: mib, Unit: "MiB", Goal: "< 5 MiB", Met: met(mib < 5)},
		{Name: name + ": time until B matches", Value: t, Unit: "s"},
	}
}

func latencyRows(ms []float64) []Row {
	name := fmt.Sprintf("edit on A → visible on B (%d samples, debounce %v)", len(ms), config.DefaultDebounce)
	p50 := percentile(ms, 0.5)
	return []Row{
		{Name: name + ": p50", Value: p50, Unit: "ms", Goal: "< 500 ms", Met: met(p50 < 500)},
		{Name: name + ": p99", Value: percentile(ms, 0.99), Unit: "ms"},
	}
}

// percentile returns the smallest sample at or above fraction p of them.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}
