package household

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/history"
	"github.com/realizefs/realize/internal/store"
	"github.com/realizefs/realize/real"
	"github.com/zeebo/blake3"
)

// blockServer gives node n an arena "x" holding one random file of size
// bytes, serves the sync messages over it and counts MsgBlocks requests.
func blockServer(t *testing.T, n *node, size int) (content []byte, bm realize.BlockMap, requests *atomic.Int64) {
	t.Helper()
	content = make([]byte, size)
	rand.NewChaCha8([32]byte{3}).Read(content)
	a, counts := serveFiles(t, n, [][]byte{content})
	bm, err := a.BlockMap(blake3.Sum256(content))
	if err != nil {
		t.Fatal(err)
	}
	return content, bm, counts[MsgBlocks]
}

// serveFiles gives node n an arena "x" holding the files, serves the sync
// messages over it and counts the MsgBlocks and MsgBlobs requests.
func serveFiles(t *testing.T, n *node, files [][]byte) (*real.Arena, map[MsgType]*atomic.Int64) {
	t.Helper()
	db, err := store.Open(t.Context(), t.TempDir(), store.Options{Peer: n.ident.ID()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	log := history.New(n.ident.ID(), n.ident, nil)
	root := t.TempDir()
	for i, content := range files {
		if err := os.WriteFile(filepath.Join(root, fmt.Sprintf("f%d", i)), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	a, err := real.NewArena(real.ArenaOptions{Name: "x", Root: root, DB: db, Log: log, Self: n.ident.ID()})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.ScanAll(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := RegisterSync(n.mux, &SyncData{DB: db, Log: log, Arena: func(realize.ArenaName) *real.Arena { return a }}); err != nil {
		t.Fatal(err)
	}
	counts := map[MsgType]*atomic.Int64{}
	for _, typ := range []MsgType{MsgBlocks, MsgBlobs} {
		count := new(atomic.Int64)
		rt := n.mux.routes[typ]
		inner := rt.handler
		rt.handler = func(ctx context.Context, p realize.PeerID, req *Request, w *ResponseWriter) error {
			count.Add(1)
			return inner(ctx, p, req, w)
		}
		n.mux.routes[typ], counts[typ] = rt, count
	}
	return a, counts
}

// TestReadBlocksLongRuns: a run of blocks travels on one stream when both
// peers speak revision 2, and in requests of at most MaxBlocksPerRequest
// when the caller's peer speaks revision 1; either way every block
// arrives, in order, with its bytes.
func TestReadBlocksLongRuns(t *testing.T) {
	for _, tc := range []struct {
		name     string
		revision uint16 // the caller's
		want     int64  // requests for the whole blob
	}{
		{"revision 2", 0, 1},
		{"revision 1", 1, -1}, // ceil(blocks / MaxBlocksPerRequest)
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newNode(t, "a", true), newNode(t, "b", true)
			b.tweak = func(o *Options) { o.revision = tc.revision }
			content, bm, requests := blockServer(t, a, 24<<20)
			if len(bm) <= MaxBlocksPerRequest {
				t.Fatalf("%d blocks: the file is too small for this test", len(bm))
			}
			syncNode(t, b)
			c := sharing(t, a, b, "x")
			src := Blocks{Host: b.host}
			var got bytes.Buffer
			next := 0
			err := src.ReadBlocks(t.Context(), a.ident.ID(), "x", blake3.Sum256(content), 0, len(bm), func(i int, data []byte) error {
				if i != next || realize.Hash(blake3.Sum256(data)) != bm[i].Hash {
					t.Fatalf("block %d (want %d) does not match the map", i, next)
				}
				next++
				got.Write(data)
				return nil
			})
			if err != nil || !bytes.Equal(got.Bytes(), content) {
				t.Fatalf("read %d bytes of %d: %v", got.Len(), len(content), err)
			}
			want := tc.want
			if want < 0 {
				want = int64((len(bm) + MaxBlocksPerRequest - 1) / MaxBlocksPerRequest)
			}
			if n := requests.Load(); n != want {
				t.Errorf("%d requests for %d blocks at revision %d, want %d", n, len(bm), c.Version(), want)
			}
		})
	}
}

// TestReadBlocksStopsEarly: a caller that stops in the middle of a long
// run (a bad block, say) gets its own error back, and the connection
// serves the next run.
func TestReadBlocksStopsEarly(t *testing.T) {
	a, b := newNode(t, "a", true), newNode(t, "b", true)
	content, bm, _ := blockServer(t, a, 24<<20)
	syncNode(t, b)
	sharing(t, a, b, "x")
	src := Blocks{Host: b.host}
	stop := errors.New("enough")
	seen := 0
	err := src.ReadBlocks(t.Context(), a.ident.ID(), "x", blake3.Sum256(content), 0, len(bm), func(i int, data []byte) error {
		seen++
		if i == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || seen != 4 {
		t.Fatalf("stopped after %d blocks with %v, want 4 and our error", seen, err)
	}
	// The connection is still good for the next run.
	err = src.ReadBlocks(t.Context(), a.ident.ID(), "x", blake3.Sum256(content), 5, 2, func(int, []byte) error { return nil })
	if err != nil {
		t.Fatalf("next run: %v", err)
	}
}

// sharing connects a and b, both sharing arena with each other, and
// returns b's connection to a once a's Hello has arrived.
func sharing(t *testing.T, a, b *node, arena realize.ArenaName) *Conn {
	t.Helper()
	a.start()
	b.start()
	a.know(b)
	b.know(a)
	a.share(b, arena)
	b.share(a, arena)
	for _, n := range []*node{a, b} {
		if err := n.host.Reconcile(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	c := connected(t, b, a)
	waitFor(t, 5e9, "hello", func() bool { return len(c.SharedArenas()) == 1 })
	return c
}

// TestReadBlocksBatched: reads of block 0 of many small files at once
// travel in a few MsgBlobs requests, each caller getting its own file; a
// blob the peer does not have is asked alone and fails with its own
// error, without failing the others. A revision 1 peer gets one MsgBlocks
// request per file.
func TestReadBlocksBatched(t *testing.T) {
	for _, tc := range []struct {
		name     string
		revision uint16
	}{{"revision 2", 0}, {"revision 1", 1}} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newNode(t, "a", true), newNode(t, "b", true)
			b.tweak = func(o *Options) { o.revision = tc.revision }
			var files [][]byte
			for i := range 300 {
				files = append(files, fmt.Appendf(nil, "small file %d", i))
			}
			_, counts := serveFiles(t, a, files)
			syncNode(t, b)
			sharing(t, a, b, "x")
			src := Blocks{Host: b.host}
			missing := realize.Hash(blake3.Sum256([]byte("nowhere")))
			errs := make([]error, len(files)+1)
			var wg sync.WaitGroup
			for i := range len(files) + 1 {
				wg.Go(func() {
					blob, want := missing, []byte(nil)
					if i < len(files) {
						blob, want = blake3.Sum256(files[i]), files[i]
					}
					errs[i] = src.ReadBlocks(t.Context(), a.ident.ID(), "x", blob, 0, 1, func(k int, data []byte) error {
						if k != 0 || !bytes.Equal(data, want) {
							return fmt.Errorf("got block %d %q, want %q", k, data, want)
						}
						return nil
					})
				})
			}
			wg.Wait()
			for i, err := range errs[:len(files)] {
				if err != nil {
					t.Fatalf("file %d: %v", i, err)
				}
			}
			if err := errs[len(files)]; realize.KindOf(err) != realize.NotExist {
				t.Errorf("missing blob: %v, want a not-exist error", err)
			}
			blobs, blocks := counts[MsgBlobs].Load(), counts[MsgBlocks].Load()
			if tc.revision == 1 {
				if blobs != 0 || blocks != int64(len(files)+1) {
					t.Errorf("revision 1: %d MsgBlobs and %d MsgBlocks requests, want 0 and %d", blobs, blocks, len(files)+1)
				}
				return
			}
			if blocks != 1 || blobs < 2 || blobs > int64(len(files))/4 {
				t.Errorf("%d MsgBlobs and %d MsgBlocks requests for %d files and a missing one, want a few and 1", blobs, blocks, len(files))
			}
		})
	}
}
