package daemon

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/consensus"
	"github.com/realizefs/realize/history"
	"github.com/realizefs/realize/household"
	"github.com/realizefs/realize/internal/control"
	"github.com/realizefs/realize/internal/store"
	"github.com/realizefs/realize/real"
	"github.com/zeebo/blake3"
)

// gatedSource is a fakeSource that holds each read until released.
type gatedSource struct {
	fakeSource
	gate chan struct{}
}

func (g *gatedSource) ReadBlocks(ctx context.Context, peer realize.PeerID, arena realize.ArenaName, blob realize.Hash, first, n int, fn func(int, []byte) error) error {
	select {
	case <-g.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.fakeSource.ReadBlocks(ctx, peer, arena, blob, first, n, fn)
}

// A file replication fetches is listed, under its path, with its peer and
// bytes, while it is fetched, and no longer after.
func TestSyncFetchIsListed(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "docs")
	if err := os.MkdirAll(filepath.Join(root, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	id, err := household.NewIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(t.Context(), t.TempDir(), store.Options{Peer: id.ID()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a, err := real.NewArena(real.ArenaOptions{Name: "docs", Root: root, DB: db, Log: history.New(id.ID(), id, nil), Self: id.ID(), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("x"), 5000)
	blob := realize.Hash(blake3.Sum256(data))
	src := &gatedSource{fakeSource: fakeSource{blobs: map[realize.Hash][]byte{blob: data}}, gate: make(chan struct{})}
	ts := newTransfers(realize.SystemClock{}, func(realize.PeerID) string { return "nas" })
	f := &syncFetcher{arena: a, src: src, stats: &consensus.FetchStats{}, ts: ts}
	tmp, err := os.Create(filepath.Join(root, "sub", real.TempPrefix+"1700000000-note.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer tmp.Close()
	done := make(chan error, 1)
	go func() {
		done <- f.Fetch(t.Context(), "docs", realize.Meta{Kind: realize.KindFile, Blob: blob, Size: int64(len(data))}, tmp, nil)
	}()
	waitFor(t, 5*time.Second, "the fetch listed", func() bool { return len(ts.list()) == 1 })
	if x := ts.list()[0]; x.Kind != control.TransferSync || x.Path != "sub/note.txt" || x.Bytes != 5000 || x.BytesDone != 0 || x.Peer != nil {
		t.Errorf("before bytes: %+v", x)
	}
	close(src.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if xs := ts.list(); len(xs) != 0 {
		t.Errorf("still listed after the fetch: %+v", xs)
	}
	f.stats.Lock()
	received := f.stats.Received
	f.stats.Unlock()
	if received != 5000 {
		t.Errorf("arena stats: received %d", received)
	}
}

// The bytes a sync fetch receives are counted, with the peer, as they land.
func TestSyncFetchCountsBytes(t *testing.T) {
	ts := newTransfers(realize.SystemClock{}, func(realize.PeerID) string { return "nas" })
	_, x := ts.start(control.TransferStatus{Kind: control.TransferSync, Arena: "docs", Path: "a", Bytes: 100})
	cs := &countingSource{BlockSource: &fakeSource{}, count: func(p realize.PeerID, n int) { ts.received(x, p, int64(n)) }}
	blob := realize.Hash{3}
	cs.BlockSource.(*fakeSource).blobs = map[realize.Hash][]byte{blob: make([]byte, 60)}
	var rejected bool
	_ = cs.ReadBlocks(t.Context(), fakePeer, "docs", blob, 0, 1, func(int, []byte) error { return nil })
	_ = cs.ReadBlocks(t.Context(), fakePeer, "docs", blob, 0, 1, func(int, []byte) error { rejected = true; return context.Canceled })
	xs := ts.list()
	if !rejected || len(xs) != 1 || xs[0].BytesDone != 60 || xs[0].Peer == nil || *xs[0].Peer != fakePeer || xs[0].PeerName != "nas" {
		t.Errorf("counted %+v (a refused block must not count)", xs)
	}
}
