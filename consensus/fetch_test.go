package consensus

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/realizefs/realize"
	"github.com/zeebo/blake3"
)

// memSource serves one blob from memory for each peer; a liar flips a bit
// in every block it sends, a down peer answers nothing.
type memSource struct {
	data   []byte
	blocks realize.BlockMap
	peers  []realize.PeerID
	liar   map[realize.PeerID]bool
	down   map[realize.PeerID]bool
	mu     sync.Mutex
	asked  map[realize.PeerID]int // blocks asked per peer
}

func newMemSource(size int, peers ...realize.PeerID) *memSource {
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{9}).Read(data)
	s := &memSource{data: data, peers: peers, liar: map[realize.PeerID]bool{}, down: map[realize.PeerID]bool{}, asked: map[realize.PeerID]int{}}
	for off := 0; off < size; off += 100 << 10 {
		end := min(off+100<<10, size)
		s.blocks = append(s.blocks, realize.Block{Hash: blake3.Sum256(data[off:end]), Size: uint32(end - off)})
	}
	return s
}

func (s *memSource) meta() realize.Meta {
	return realize.Meta{Kind: realize.KindFile, Size: int64(len(s.data)), Blob: blake3.Sum256(s.data)}
}

func (s *memSource) Sources(realize.ArenaName) []realize.PeerID { return s.peers }

func (s *memSource) BlockMap(_ context.Context, p realize.PeerID, _ realize.ArenaName, _ realize.Hash) (realize.BlockMap, error) {
	if s.down[p] {
		return nil, errors.New("down")
	}
	return s.blocks, nil
}

func (s *memSource) ReadBlocks(_ context.Context, p realize.PeerID, _ realize.ArenaName, _ realize.Hash, first, n int, fn func(int, []byte) error) error {
	if s.down[p] {
		return errors.New("down")
	}
	off := 0
	for i := 0; i < first; i++ {
		off += int(s.blocks[i].Size)
	}
	for i := first; i < first+n && i < len(s.blocks); i++ {
		s.mu.Lock()
		s.asked[p]++
		s.mu.Unlock()
		b := append([]byte(nil), s.data[off:off+int(s.blocks[i].Size)]...)
		if s.liar[p] {
			b[0] ^= 1
		}
		if err := fn(i, b); err != nil {
			return err
		}
		off += int(s.blocks[i].Size)
	}
	return nil
}

func fetchInto(t *testing.T, src *memSource, f *os.File, stats *FetchStats) error {
	t.Helper()
	bf := &BlockFetcher{Source: src, InFlight: 3, RunBlocks: 4, Stats: stats}
	return bf.Fetch(t.Context(), "a", src.meta(), f, nil)
}

func tempFile(t *testing.T) *os.File {
	f, err := os.Create(filepath.Join(t.TempDir(), "dst"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestFetchVerifiesAndRefetchesElsewhere(t *testing.T) {
	// The liar is listed first and one worker fetches: every run is asked
	// of it before anyone else (with several workers, one of them may take
	// every run before the one starting at the liar runs at all).
	src := newMemSource(3<<20+123, pb, pa, pc)
	src.liar[pb] = true
	f := tempFile(t)
	var st FetchStats
	bf := &BlockFetcher{Source: src, InFlight: 1, RunBlocks: 4, Stats: &st}
	if err := bf.Fetch(t.Context(), "a", src.meta(), f, nil); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(f.Name())
	if !bytes.Equal(got, src.data) {
		t.Fatal("fetched bytes differ")
	}
	if st.Rejected == 0 || src.asked[pb] == 0 {
		t.Errorf("the lying peer was never asked or never caught: rejected %d, asked %v", st.Rejected, src.asked)
	}
	if st.Received != int64(len(src.data)) {
		t.Errorf("received %d bytes, want %d", st.Received, len(src.data))
	}
}

func TestFetchResumesFromPartialFile(t *testing.T) {
	src := newMemSource(2<<20, pa)
	f := tempFile(t)
	half := len(src.data) / 2
	f.Write(src.data[:half]) // a transfer that stopped half way
	var st FetchStats
	if err := fetchInto(t, src, f, &st); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(f.Name())
	if !bytes.Equal(got, src.data) {
		t.Fatal("resumed bytes differ")
	}
	if st.Reused < int64(half)-(100<<10) || st.Received > int64(len(src.data)-half)+(100<<10) {
		t.Errorf("resume reused %d and received %d of %d bytes", st.Reused, st.Received, len(src.data))
	}
}

func TestFetchFailsCleanlyWhenNobodyHasIt(t *testing.T) {
	src := newMemSource(1<<20, pa, pb)
	src.down[pa] = true
	src.liar[pb] = true
	err := fetchInto(t, src, tempFile(t), nil)
	if realize.KindOf(err) != realize.Unavailable {
		t.Fatalf("err = %v, want unavailable", err)
	}
}

// TestFetchRefusesHostileBlockMaps: a map with an oversized or empty block
// is refused (it would make us allocate or index past our buffers), and
// another peer's good map is used instead.
func TestFetchRefusesHostileBlockMaps(t *testing.T) {
	for _, bad := range []realize.BlockMap{
		{{Size: 2 << 20}, {Size: 1<<20 + 1}},                 // a 2 MiB "block"
		append(realize.BlockMap{{Size: 0}}, realize.Block{}), // empty blocks
	} {
		src := newMemSource(3<<20+1, pa, pb)
		evil := &hostileMap{memSource: src, evil: pa, bad: bad}
		bf := &BlockFetcher{Source: evil}
		f := tempFile(t)
		if err := bf.Fetch(t.Context(), "a", src.meta(), f, nil); err != nil {
			t.Fatalf("with one hostile peer: %v", err)
		}
	}
}

type hostileMap struct {
	*memSource
	evil realize.PeerID
	bad  realize.BlockMap
}

func (h *hostileMap) BlockMap(ctx context.Context, p realize.PeerID, a realize.ArenaName, b realize.Hash) (realize.BlockMap, error) {
	if p == h.evil {
		return h.bad, nil
	}
	return h.memSource.BlockMap(ctx, p, a, b)
}
