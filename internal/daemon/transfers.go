package daemon

import (
	"cmp"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/consensus"
	"github.com/realizefs/realize/internal/control"
	"github.com/realizefs/realize/real"
	"github.com/realizefs/realize/unreal"
)

// transfers tracks the work that moves bytes, for `realize status`: files
// fetched by replication (sync), pins in progress, and bytes fetched into
// the cache for reads. It only watches: the fetchers below report to it,
// and nothing waits on it.
type transfers struct {
	clock realize.Clock

	mu    sync.Mutex
	next  int
	live  map[int]*transfer     // sync and pin, by id
	reads map[blobKey]*transfer // cache fetches for reads, by content
	open  map[blobKey]*openFile // unreal files open through the mount
	pins  map[blobKey]*transfer // the content each running pin fills now
	names func(realize.PeerID) string
}

type blobKey struct {
	arena realize.ArenaName
	blob  realize.Hash
}

// openFile is an unreal file open for reading: it names the bytes the
// cache fetches for it.
type openFile struct {
	path  realize.Path
	size  int64
	count int
}

type transfer struct {
	st    control.TransferStatus // Peer and Rate are filled in by list
	peer  realize.PeerID
	meter rateMeter
	last  time.Time // bytes last arrived (reads linger a while after)
}

// readLinger is how long a read stays listed after its last bytes.
const readLinger = 5 * time.Second

func newTransfers(clock realize.Clock, names func(realize.PeerID) string) *transfers {
	return &transfers{clock: clock, names: names, live: map[int]*transfer{}, reads: map[blobKey]*transfer{},
		open: map[blobKey]*openFile{}, pins: map[blobKey]*transfer{}}
}

func (ts *transfers) start(st control.TransferStatus) (int, *transfer) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.next++
	st.Started = ts.clock.Now()
	t := &transfer{st: st, last: st.Started}
	ts.live[ts.next] = t
	return ts.next, t
}

func (ts *transfers) end(id int) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	t := ts.live[id]
	delete(ts.live, id)
	for k, p := range ts.pins {
		if p == t {
			delete(ts.pins, k)
		}
	}
}

// received counts n bytes from peer for t.
func (ts *transfers) received(t *transfer, peer realize.PeerID, n int64) {
	now := ts.clock.Now()
	ts.mu.Lock()
	defer ts.mu.Unlock()
	t.st.BytesDone += n
	t.peer, t.last = peer, now
	t.meter.add(now, n)
}

// pinProgress copies a pin's progress into its transfer. blob is the
// content being filled now (the cache's fetches for it belong to the pin).
func (ts *transfers) pinProgress(t *transfer, ev *control.PinEvent, blob realize.Hash) {
	now := ts.clock.Now()
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if d := ev.BytesDone - t.st.BytesDone; d > 0 {
		t.meter.add(now, d)
	}
	t.st.Files, t.st.FilesDone, t.st.Bytes, t.st.BytesDone, t.st.Current = ev.Files, ev.FilesDone, ev.Bytes, ev.BytesDone, ev.Current
	for k, p := range ts.pins {
		if p == t {
			delete(ts.pins, k)
		}
	}
	if ev.Current != "" {
		ts.pins[blobKey{ev.Arena, blob}] = t
	}
}

// cacheFetched counts n bytes of blob the cache received from peer:
// towards the pin filling that content, else towards a read.
func (ts *transfers) cacheFetched(arena realize.ArenaName, blob realize.Hash, peer realize.PeerID, n int64) {
	now := ts.clock.Now()
	k := blobKey{arena, blob}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if p := ts.pins[k]; p != nil {
		p.peer, p.last = peer, now
		return
	}
	t := ts.reads[k]
	if t == nil || now.Sub(t.last) > readLinger {
		t = &transfer{st: control.TransferStatus{Kind: control.TransferRead, Arena: arena, Started: now}}
		if o := ts.open[k]; o != nil {
			t.st.Path, t.st.Bytes = o.path, o.size
		} else {
			b := blob
			t.st.Blob = &b
		}
		ts.reads[k] = t
	}
	t.st.BytesDone += n
	t.peer, t.last = peer, now
	t.meter.add(now, n)
}

// opened notes that an unreal file is open for reading, so that the bytes
// the cache fetches for it are shown under its path. Call the returned
// func when it is closed.
func (ts *transfers) opened(arena realize.ArenaName, path realize.Path, m realize.Meta) func() {
	k := blobKey{arena, m.Blob}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	o := ts.open[k]
	if o == nil {
		o = &openFile{path: path, size: m.Size}
		ts.open[k] = o
	}
	o.count++
	if t := ts.reads[k]; t != nil && t.st.Path == "" {
		t.st.Path, t.st.Bytes, t.st.Blob = path, m.Size, nil
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			ts.mu.Lock()
			defer ts.mu.Unlock()
			if o.count--; o.count == 0 && ts.open[k] == o {
				delete(ts.open, k)
			}
		})
	}
}

// list returns the transfers running now: pins, then syncs, then reads,
// each oldest first.
func (ts *transfers) list() []control.TransferStatus {
	now := ts.clock.Now()
	ts.mu.Lock()
	defer ts.mu.Unlock()
	out := make([]control.TransferStatus, 0, len(ts.live)+len(ts.reads))
	add := func(t *transfer) {
		st := t.st
		if !t.peer.IsZero() {
			p := t.peer
			st.Peer = &p
			st.PeerName = ts.names(p)
		}
		st.Rate = t.meter.rate(now, st.Started)
		out = append(out, st)
	}
	for _, t := range ts.live {
		add(t)
	}
	for k, t := range ts.reads {
		if now.Sub(t.last) > readLinger {
			delete(ts.reads, k)
			continue
		}
		add(t)
	}
	order := map[string]int{control.TransferPin: 0, control.TransferSync: 1, control.TransferRead: 2}
	slices.SortFunc(out, func(a, b control.TransferStatus) int {
		return cmp.Or(cmp.Compare(order[a.Kind], order[b.Kind]), a.Started.Compare(b.Started),
			cmp.Compare(a.Arena, b.Arena), cmp.Compare(a.Path, b.Path))
	})
	return out
}

// counts returns how many transfers of each kind are listed now.
func (ts *transfers) counts() map[string]int {
	out := map[string]int{control.TransferPin: 0, control.TransferSync: 0, control.TransferRead: 0}
	for _, t := range ts.list() {
		out[t.Kind]++
	}
	return out
}

// rateMeter sums bytes per second of the clock over the last rateWindow
// seconds.
type rateMeter struct {
	sec [rateWindow]int64 // the Unix second each slot counts
	n   [rateWindow]int64
}

const rateWindow = 5

func (m *rateMeter) add(now time.Time, n int64) {
	s := now.Unix()
	i := int(s % rateWindow)
	if m.sec[i] != s {
		m.sec[i], m.n[i] = s, 0
	}
	m.n[i] += n
}

// rate is bytes per second over the window (or since started, when that
// is shorter; at least one second, so a first burst is not inflated).
func (m *rateMeter) rate(now, started time.Time) int64 {
	s := now.Unix()
	var sum int64
	for i := range m.sec {
		if d := s - m.sec[i]; d >= 0 && d < rateWindow {
			sum += m.n[i]
		}
	}
	// The window: the seconds before this one, and this one so far.
	span := float64(rateWindow-1) + float64(now.Nanosecond())/1e9
	if since := now.Sub(started).Seconds(); since < span {
		span = since
	}
	span = max(span, 1)
	return int64(float64(sum) / span)
}

// syncFetcher fetches the files replication places, like the
// consensus.BlockFetcher it wraps, and lists each as a sync transfer.
type syncFetcher struct {
	arena *real.Arena
	src   unreal.BlockSource
	stats *consensus.FetchStats
	ts    *transfers
}

// Fetch implements consensus.Fetcher.
func (f *syncFetcher) Fetch(ctx context.Context, arena realize.ArenaName, m realize.Meta, dst *os.File, l *real.Landed) error {
	id, t := f.ts.start(control.TransferStatus{Kind: control.TransferSync, Arena: arena,
		Path: tempTarget(f.arena.Root(), dst.Name()), Bytes: m.Size})
	defer f.ts.end(id)
	bf := &consensus.BlockFetcher{Source: &countingSource{BlockSource: f.src, count: func(p realize.PeerID, n int) {
		f.ts.received(t, p, int64(n))
	}}, Local: f.arena, Stats: f.stats}
	return bf.Fetch(ctx, arena, m, dst, l)
}

// tempTarget recovers the path a file is fetched for from the name of the
// temporary file it is filled in (real's "<prefix><nanos>-<base>" beside
// the target). It returns "" for a name of another shape.
func tempTarget(root, tmp string) realize.Path {
	base, ok := strings.CutPrefix(filepath.Base(tmp), real.TempPrefix)
	if !ok {
		return ""
	}
	_, base, ok = strings.Cut(base, "-")
	if !ok {
		return ""
	}
	dir, err := filepath.Rel(root, filepath.Dir(tmp))
	if err != nil || dir == ".." || strings.HasPrefix(dir, ".."+string(filepath.Separator)) {
		return ""
	}
	p, err := realize.ParsePath(filepath.ToSlash(filepath.Join(dir, base)))
	if err != nil {
		return ""
	}
	return p
}

// countingSource is a BlockSource that reports the bytes of every block
// its caller accepted (verified and kept), and from whom.
type countingSource struct {
	unreal.BlockSource
	count func(peer realize.PeerID, n int)
}

func (s *countingSource) ReadBlocks(ctx context.Context, peer realize.PeerID, arena realize.ArenaName, blob realize.Hash,
	first, n int, fn func(i int, data []byte) error) error {
	return s.BlockSource.ReadBlocks(ctx, peer, arena, blob, first, n, func(i int, data []byte) error {
		err := fn(i, data)
		if err == nil {
			s.count(peer, len(data))
		}
		return err
	})
}

// cacheSource is the cache's BlockSource: it reports fetched bytes to the
// transfers.
func cacheSource(src unreal.BlockSource, ts *transfers) unreal.BlockSource {
	return &cacheCounting{BlockSource: src, ts: ts}
}

type cacheCounting struct {
	unreal.BlockSource
	ts *transfers
}

func (s *cacheCounting) ReadBlocks(ctx context.Context, peer realize.PeerID, arena realize.ArenaName, blob realize.Hash,
	first, n int, fn func(i int, data []byte) error) error {
	return s.BlockSource.ReadBlocks(ctx, peer, arena, blob, first, n, func(i int, data []byte) error {
		err := fn(i, data)
		if err == nil {
			s.ts.cacheFetched(arena, blob, peer, int64(len(data)))
		}
		return err
	})
}
