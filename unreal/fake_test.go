package unreal

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/zeebo/blake3"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/internal/store"
)

const testArena = realize.ArenaName("photos")

var (
	peerA = realize.PeerID{0xa}
	peerB = realize.PeerID{0xb}
)

// testBlob is a blob the fake serves: its bytes (or a generator of its
// blocks, for blobs too large to keep in memory) and its block map.
type testBlob struct {
	meta realize.Meta
	bm   realize.BlockMap
	offs []int64
	data []byte             // nil when gen is used
	gen  func(i int) []byte // block i's bytes
}

func (b *testBlob) block(i int) []byte {
	if b.data != nil {
		return b.data[b.offs[i]:b.offs[i+1]]
	}
	return b.gen(i)
}

// bytesAt returns the expected bytes of [off, end).
func (b *testBlob) bytesAt(off, end int64) []byte {
	if b.data != nil {
		return b.data[off:end]
	}
	var out []byte
	for i := range b.bm {
		lo, hi := max(off, b.offs[i]), min(end, b.offs[i+1])
		if lo < hi {
			out = append(out, b.gen(i)[lo-b.offs[i]:hi-b.offs[i]]...)
		}
	}
	return out
}

// newBlob makes a blob of random bytes cut into blocks of the given
// sizes (one size ≤ 1 MiB: a one-block blob named by its hash).
func newBlob(rng *rand.Rand, sizes ...int) *testBlob {
	var total int
	for _, s := range sizes {
		total += s
	}
	data := make([]byte, total)
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], rng.Uint64())
	rand.NewChaCha8(seed).Read(data)
	b := &testBlob{data: data, offs: []int64{0}}
	for _, s := range sizes {
		start := b.offs[len(b.offs)-1]
		b.bm = append(b.bm, realize.Block{Hash: blake3.Sum256(data[start : start+int64(s)]), Size: uint32(s)})
		b.offs = append(b.offs, start+int64(s))
	}
	b.meta = realize.Meta{Kind: realize.KindFile, Size: int64(total), Blob: blake3.Sum256(data)}
	return b
}

// bigBlob makes a blob of n 1 MiB blocks whose bytes are generated on
// demand (seed and block index make each block unique).
func bigBlob(seed byte, n int) *testBlob {
	pattern := make([]byte, 4096)
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	for i := range pattern {
		pattern[i] = byte(rng.Uint32())
	}
	gen := func(i int) []byte {
		out := bytes.Repeat(pattern, (1<<20)/len(pattern))
		out[0] = seed
		binary.BigEndian.PutUint64(out[1:], uint64(i))
		return out
	}
	b := &testBlob{gen: gen, offs: []int64{0}}
	for i := range n {
		b.bm = append(b.bm, realize.Block{Hash: blake3.Sum256(gen(i)), Size: 1 << 20})
		b.offs = append(b.offs, int64(i+1)<<20)
	}
	b.meta = realize.Meta{Kind: realize.KindFile, Size: int64(n) << 20, Blob: blake3.Sum256([]byte{seed, 'b', 'i', 'g'})}
	return b
}

type blockKey struct {
	blob realize.Hash
	i    int
}

// fakeSource serves blobs from memory, counts what it is asked, and
// misbehaves on request.
type fakeSource struct {
	mu      sync.Mutex
	peers   []realize.PeerID
	blobs   map[realize.Hash]*testBlob
	corrupt map[realize.PeerID]map[int]bool // blocks a peer sends wrong
	hostile map[realize.PeerID]bool         // peers that send a bad block map
	hang    map[realize.PeerID]bool         // peers that never answer
	gate    chan struct{}                   // if set, ReadBlocks waits for it to close

	maps int                                 // BlockMap calls
	sent map[realize.PeerID]map[blockKey]int // blocks sent, per peer
}

func newFakeSource(blobs ...*testBlob) *fakeSource {
	f := &fakeSource{peers: []realize.PeerID{peerA}, blobs: map[realize.Hash]*testBlob{},
		corrupt: map[realize.PeerID]map[int]bool{}, hostile: map[realize.PeerID]bool{}, hang: map[realize.PeerID]bool{},
		sent: map[realize.PeerID]map[blockKey]int{}}
	for _, b := range blobs {
		f.blobs[b.meta.Blob] = b
	}
	return f
}

func (f *fakeSource) Sources(realize.ArenaName) []realize.PeerID {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.peers)
}

func (f *fakeSource) BlockMap(ctx context.Context, peer realize.PeerID, _ realize.ArenaName, blob realize.Hash) (realize.BlockMap, error) {
	f.mu.Lock()
	f.maps++
	b, hostile, hang := f.blobs[blob], f.hostile[peer], f.hang[peer]
	f.mu.Unlock()
	if hang {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if b == nil {
		return nil, errors.New("no such blob")
	}
	bm := slices.Clone(b.bm)
	if hostile {
		bm[0].Size++ // no longer adds up
	}
	return bm, nil
}

func (f *fakeSource) ReadBlocks(ctx context.Context, peer realize.PeerID, _ realize.ArenaName, blob realize.Hash, first, n int, fn func(int, []byte) error) error {
	f.mu.Lock()
	b, hang, gate := f.blobs[blob], f.hang[peer], f.gate
	f.mu.Unlock()
	if hang {
		<-ctx.Done()
		return ctx.Err()
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if b == nil {
		return errors.New("no such blob")
	}
	for i := first; i < first+n && i < len(b.bm); i++ {
		data := b.block(i)
		f.mu.Lock()
		if f.sent[peer] == nil {
			f.sent[peer] = map[blockKey]int{}
		}
		f.sent[peer][blockKey{blob, i}]++
		if f.corrupt[peer][i] {
			data = bytes.Clone(data)
			data[0] ^= 0xff
		}
		f.mu.Unlock()
		if err := fn(i, data); err != nil {
			return err
		}
	}
	return nil
}

// fetched returns the indexes of blocks of blob sent (by any peer) since
// the last reset, with repetitions.
func (f *fakeSource) fetched(blob realize.Hash) []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []int
	for _, m := range f.sent {
		for k, n := range m {
			if k.blob == blob {
				for range n {
					out = append(out, k.i)
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

func (f *fakeSource) sentBy(p realize.PeerID, blob realize.Hash, i int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sent[p][blockKey{blob, i}]
}

func (f *fakeSource) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.maps = 0
	clear(f.sent)
}

func (f *fakeSource) mapCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.maps
}

// testEnv is a data directory with a database and a cache on it.
type testEnv struct {
	t    *testing.T
	data string
	db   *store.DB
	opt  CacheOptions
}

func newEnv(t *testing.T, src BlockSource, tweak func(*CacheOptions)) *testEnv {
	t.Helper()
	data := t.TempDir()
	db, err := store.Open(t.Context(), data, store.Options{Peer: realize.PeerID{1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	opt := CacheOptions{DB: db, Dir: filepath.Join(data, "cache"), Source: src, Wait: 2 * time.Second, ReadAhead: -1,
		OthersHold: func(realize.Hash) int { return 1 }}
	if tweak != nil {
		tweak(&opt)
	}
	return &testEnv{t: t, data: data, db: db, opt: opt}
}

func (e *testEnv) open() *Cache {
	e.t.Helper()
	c, err := OpenCache(e.t.Context(), e.opt)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// read reads [off, off+n) and checks the bytes against the blob.
func read(t *testing.T, c *Cache, b *testBlob, off int64, n int) {
	t.Helper()
	if err := readCheck(t, c, b, off, n); err != nil {
		t.Fatal(err)
	}
}

func readCheck(t *testing.T, c *Cache, b *testBlob, off int64, n int) error {
	p := make([]byte, n)
	got, err := c.ReadAt(t.Context(), testArena, b.meta, p, off)
	end := min(off+int64(n), b.meta.Size)
	want := 0
	if off < b.meta.Size {
		want = int(end - off)
	}
	if got != want || (want < n && err != io.EOF) || (want == n && err != nil) {
		return fmt.Errorf("ReadAt(%d, %d) = %d, %v; want %d bytes", off, n, got, err, want)
	}
	if want > 0 && !bytes.Equal(p[:got], b.bytesAt(off, end)) {
		return fmt.Errorf("ReadAt(%d, %d): wrong bytes", off, n)
	}
	return nil
}
