package bench

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/realizefs/realize/household"
	nfsc "github.com/willscott/go-nfs-client/nfs"
	"github.com/willscott/go-nfs-client/nfs/rpc"
)

// nfsChunk is the size of each READ, as a kernel client with rsize=1M asks.
const nfsChunk = 1 << 20

// nfsRun is what one run of benchNFS measured.
type nfsRun struct {
	ttfb             float64 // seconds to the first 4 KiB of an uncached file
	uncached, cached float64 // MB/s reading the whole file through NFS
	local, raw       float64 // baselines: MB/s reading A's file from disk, raw QUIC
}

// benchNFS: A holds a big file real, B (unpinned) only lists it and
// serves it over NFS. Through an in-process NFS client (go-nfs-client,
// the same RPCs a kernel sends): time to first byte of the uncached file,
// a sequential read of it (every block fetched from A on demand), and a
// second read from B's cache; baselines: the same file read from A's disk
// and a raw QUIC stream, in the same run.
func benchNFS(ctx context.Context, o Options) ([]Row, error) {
	if o.NFSBytes <= 0 {
		return nil, nil
	}
	bin, err := buildRealize(ctx, o)
	if err != nil {
		return nil, err
	}
	var runs []nfsRun
	for i := 0; i < o.Runs; i++ {
		r, err := nfsOnce(ctx, o, bin, i)
		if err != nil {
			return nil, fmt.Errorf("nfs run %d: %w", i, err)
		}
		runs = append(runs, r)
	}
	return nfsRows(o, runs), nil
}

func nfsOnce(ctx context.Context, o Options, bin string, run int) (nfsRun, error) {
	var r nfsRun
	dir, err := freshDir(o, "nfs-run")
	if err != nil {
		return r, err
	}
	nfsAddr, err := freeAddr("tcp")
	if err != nil {
		return r, err
	}
	a, err := newDaemonPeer(ctx, bin, filepath.Join(dir, "a"), "alpha")
	if err != nil {
		return r, err
	}
	defer a.stop()
	b, err := newDaemonPeerWith(ctx, bin, filepath.Join(dir, "b"), "bravo", nfsAddr, false)
	if err != nil {
		return r, err
	}
	defer b.stop()
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], uint64(run)+77)
	src := filepath.Join(a.arena, bigName)
	if err := writeRandom(src, o.NFSBytes, rand.NewChaCha8(seed)); err != nil {
		return r, err
	}
	for _, pq := range [][2]*daemonPeer{{a, b}, {b, a}} {
		if _, err := pq[0].cli(ctx, "peer", "add", pq[1].name, pq[1].id, pq[1].listen); err != nil {
			return r, err
		}
	}
	for _, p := range []*daemonPeer{a, b} {
		if err := p.start(); err != nil {
			return r, err
		}
	}
	if err := b.waitListed(ctx, "home:"+bigName, transferLimit(o.NFSBytes)); err != nil {
		return r, fmt.Errorf("%w\nbravo log:\n%s", err, b.logTail())
	}
	if err := nfsFigures(ctx, o, &r, nfsAddr); err != nil {
		return r, fmt.Errorf("%w\nalpha log:\n%s\nbravo log:\n%s", err, a.logTail(), b.logTail())
	}
	if r.local, err = readLocal(src); err != nil {
		return r, err
	}
	a.stop()
	b.stop()
	bps, err := household.RawThroughput(ctx, o.NFSBytes)
	r.raw = bps / 1e6
	return r, err
}

// waitListed waits until the daemon lists ref as a file known from a peer.
func (p *daemonPeer) waitListed(ctx context.Context, ref string, limit time.Duration) error {
	return waitUntil(ctx, limit, 100*time.Millisecond, ref+" listed on "+p.name, func() (bool, error) {
		out, err := p.cli(ctx, "status", "--json", ref)
		if err != nil {
			return false, nil
		}
		var st struct {
			State string `json:"state"`
		}
		return json.Unmarshal([]byte(out), &st) == nil && st.State == "remote", nil
	})
}

// nfsInFlight is how many READs a sequential pass keeps outstanding, each
// on its own connection (go-nfs-client waits for each reply): a kernel
// client reading a file sequentially keeps several READs in flight too.
const nfsInFlight = 4

func mountNFS(addr string) (*nfsc.Target, func(), error) {
	c, err := rpc.DialTCP("tcp", addr, false)
	if err != nil {
		return nil, nil, err
	}
	tg, err := (&nfsc.Mount{Client: c}).Mount("/", rpc.AuthNull)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return tg, c.Close, nil
}

func nfsFigures(ctx context.Context, o Options, r *nfsRun, addr string) error {
	var tgs []*nfsc.Target
	for range nfsInFlight {
		tg, closeFn, err := mountNFS(addr)
		if err != nil {
			return err
		}
		defer closeFn()
		tgs = append(tgs, tg)
	}
	tg := tgs[0]
	path := "/home/" + bigName
	start := time.Now()
	f, err := tg.Open(path)
	if err != nil {
		return err
	}
	buf := make([]byte, 4096)
	if _, err := f.ReadAt(buf, 0); err != nil && err != io.EOF {
		return err
	}
	r.ttfb = time.Since(start).Seconds()
	f.Close()
	if r.uncached, err = readNFS(tgs, path, o.NFSBytes); err != nil {
		return err
	}
	r.cached, err = readNFS(tgs, path, o.NFSBytes)
	return err
}

// readNFS reads the whole file once, in order, in nfsChunk READs with one
// outstanding per target (chunk i on target i mod len(tgs)), and returns
// MB/s.
func readNFS(tgs []*nfsc.Target, path string, size int64) (float64, error) {
	start := time.Now()
	errs := make(chan error, len(tgs))
	for k, tg := range tgs {
		go func() { errs <- readStripe(tg, path, size, k, len(tgs)) }()
	}
	for range tgs {
		if err := <-errs; err != nil {
			return 0, err
		}
	}
	return float64(size) / 1e6 / time.Since(start).Seconds(), nil
}

func readStripe(tg *nfsc.Target, path string, size int64, k, n int) error {
	f, err := tg.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, nfsChunk)
	for off := int64(k) * nfsChunk; off < size; off += int64(n) * nfsChunk {
		want := min(int64(nfsChunk), size-off)
		got := int64(0)
		for got < want {
			m, err := f.ReadAt(buf[got:want], off+got)
			got += int64(m)
			if err != nil && err != io.EOF || m == 0 {
				return fmt.Errorf("read at %d through NFS: %d of %d bytes, %v", off, got, want, err)
			}
		}
	}
	return nil
}

// readLocal reads a file from the local disk (page cache as it is) in the
// same chunk size, one reader, and returns MB/s.
func readLocal(path string) (float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	start := time.Now()
	n, err := io.CopyBuffer(io.Discard, f, make([]byte, nfsChunk))
	if err != nil {
		return 0, err
	}
	return float64(n) / 1e6 / time.Since(start).Seconds(), nil
}

func nfsRows(o Options, runs []nfsRun) []Row {
	col := func(f func(nfsRun) float64) float64 {
		var xs []float64
		for _, r := range runs {
			xs = append(xs, f(r))
		}
		return median(xs)
	}
	size := human(o.NFSBytes)
	ttfb := col(func(r nfsRun) float64 { return r.ttfb }) * 1000
	unc, cached := col(func(r nfsRun) float64 { return r.uncached }), col(func(r nfsRun) float64 { return r.cached })
	raw, local := col(func(r nfsRun) float64 { return r.raw }), col(func(r nfsRun) float64 { return r.local })
	return []Row{
		{Name: "nfs: first byte of an uncached " + size + " file", Value: ttfb, Unit: "ms", Goal: "< 100 ms", Met: met(ttfb < 100)},
		{Name: "nfs: sequential read, uncached " + size, Value: unc, Unit: "MB/s", Baseline: "raw QUIC stream", Ratio: unc / raw},
		{Name: "nfs: sequential read, cached " + size, Value: cached, Unit: "MB/s", Baseline: "local disk read", Ratio: cached / local},
		{Name: "local disk read " + size + " (baseline)", Value: local, Unit: "MB/s"},
		{Name: "raw QUIC stream " + size + " (baseline)", Value: raw, Unit: "MB/s"},
	}
}
