package household

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/history"
	"github.com/realizefs/realize/internal/store"
	"github.com/realizefs/realize/real"
	"github.com/zeebo/blake3"
)

// The committed corpora under testdata/fuzz hold these seeds and more;
// `go test` runs them all as regression tests.

func frameSeeds(tb testing.TB) [][]byte {
	return [][]byte{
		request(tb, msgEcho, &echoMsg{Text: "hi"}),
		request(tb, MsgHello, &Hello{Version: 1, Name: "n", Arenas: []realize.ArenaName{"a", "b"}}),
		request(tb, msgCount, &echoMsg{N: 3}),
		request(tb, msgArena, &arenaReq{Arena: "shared"}),
		request(tb, MsgPing, nil),
		{0}, {0x80}, {0x81, 0x00}, {0xff, 0xff, 0xff, 0xff, 0x0f}, {5, 1, 2},
		{3, 0xbf, 0x01, 0xff},
	}
}

func FuzzReadFrame(f *testing.F) {
	for _, s := range frameSeeds(f) {
		f.Add(s, uint16(64))
	}
	f.Fuzz(func(t *testing.T, data []byte, limit uint16) {
		max := int(limit)%4096 + 1
		r := bytes.NewReader(data)
		br := bufio.NewReaderSize(r, 16)
		consumed := func() int { return len(data) - r.Len() - br.Buffered() }
		for range len(data) + 1 { // every frame takes at least two bytes
			before := consumed()
			b, err := readFrame(br, max)
			var fe *frameError
			switch {
			case errors.Is(err, io.EOF):
				if before != len(data) {
					t.Fatalf("EOF at byte %d of %d", before, len(data))
				}
				return
			case errors.As(err, &fe):
				return
			case err != nil:
				t.Fatalf("error of type %T: %v", err, err)
			}
			if len(b) == 0 || len(b) > max {
				t.Fatalf("frame of %d bytes, limit %d", len(b), max)
			}
			var prefix [binary.MaxVarintLen64]byte
			if got, want := consumed()-before, binary.PutUvarint(prefix[:], uint64(len(b)))+len(b); got != want {
				t.Fatalf("consumed %d bytes for a frame of %d", got, want)
			}
		}
		t.Fatal("reading did not end")
	})
}

// FuzzServeStream feeds anything to the serving side of a stream: it must
// answer with a well-formed response or nothing, and never panic.
func FuzzServeStream(f *testing.F) {
	for _, s := range frameSeeds(f) {
		f.Add(s, true)
		f.Add(s, false)
	}
	mux := testMux(f)
	done, cancel := context.WithCancel(context.Background())
	cancel() // handlers that wait for the caller return at once
	f.Fuzz(func(t *testing.T, data []byte, hello bool) {
		c := offlineConnWith(mux, hello)
		s := newMemStream(done, data)
		c.serveStream(s)
		if !s.closed {
			t.Fatal("stream not closed")
		}
		if s.out.Len() == 0 {
			return // an empty request gets no answer
		}
		if _, _, err := parseResponse(s.out.Bytes(), MaxFrameSize); err != nil {
			t.Fatalf("bad response %x: %v", s.out.Bytes(), err)
		}
	})
}

// FuzzReader feeds anything to the calling side as a response.
func FuzzReader(f *testing.F) {
	c := newCodec()
	frame := func(fr responseFrame) []byte {
		b, _ := c.marshal(fr)
		var buf bytes.Buffer
		_ = writeFrame(&buf, b)
		return buf.Bytes()
	}
	body, _ := c.marshal(&echoMsg{Text: "x", N: 1})
	eb, _ := c.marshal(&errorBody{Code: 4, Message: "no"})
	end := frame(responseFrame{Kind: kindEnd})
	f.Add(append(frame(responseFrame{Kind: kindData, Body: body}), end...))
	f.Add(frame(responseFrame{Kind: kindError, Body: eb}))
	f.Add(end)
	f.Add([]byte{2, 0xa1, 0x01})
	f.Add(frame(responseFrame{Kind: 9}))
	mux := testMux(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		conn := offlineConnWith(mux, true)
		s := newMemStream(t.Context(), data)
		r := &Reader{conn: conn, s: s, br: bufio.NewReaderSize(s, 16), max: DefaultFrameSize,
			op: "fuzz", ctx: t.Context(), stop: func() bool { return true }}
		defer r.Close()
		for range len(data) + 1 {
			var m echoMsg
			err := r.Next(&m)
			if err == nil {
				continue
			}
			if again := r.Next(&m); again != err {
				t.Fatalf("error not sticky: %v then %v", err, again)
			}
			var e *realize.Error
			if !errors.Is(err, io.EOF) && !errors.As(err, &e) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		t.Fatal("reading did not end")
	})
}

// offlineConnWith is offlineConn sharing one Mux across fuzz runs.
func offlineConnWith(mux *Mux, helloDone bool) *Conn {
	h := &Host{opts: withDefaults(Options{Mux: mux, Name: "offline",
		Arenas: func(realize.PeerID) []realize.ArenaName { return []realize.ArenaName{"shared", "ours"} }}),
		codec: newCodec()}
	h.log, h.clock = slog.New(slog.DiscardHandler), h.opts.Clock
	c := &Conn{host: h, peer: realize.PeerID{7}, helloCh: make(chan struct{})}
	if helloDone {
		c.setHello(Hello{Version: 1, Arenas: []realize.ArenaName{"shared", "theirs"}})
	}
	return c
}

// FuzzServeBlocks feeds anything to the block handlers (MsgBlocks,
// MsgBlobs, MsgBlockMap) of a peer holding a few files: the response is
// well formed, and every block it carries is one of the files' blocks.
func FuzzServeBlocks(f *testing.F) {
	files := [][]byte{[]byte("one small file"), []byte("another one"), bytes.Repeat([]byte("x"), 3000)}
	mux, blobs := fuzzBlockServer(f, files)
	known := map[string]bool{}
	for _, c := range files {
		known[string(c)] = true
	}
	for _, b := range blobs {
		f.Add(request(f, MsgBlobs, &BlobsRequest{Arena: "shared", Blobs: []realize.Hash{b, {1}, b}}))
		f.Add(request(f, MsgBlocks, &BlobRequest{Arena: "shared", Blob: b, First: 0, N: 1}))
		f.Add(request(f, MsgBlockMap, &BlobRequest{Arena: "shared", Blob: b}))
	}
	f.Add(request(f, MsgBlobs, &BlobsRequest{Arena: "shared"}))
	f.Add(request(f, MsgBlobs, &BlobsRequest{Arena: "theirs", Blobs: blobs}))
	f.Add(request(f, MsgBlobs, &BlobsRequest{Arena: "shared", Blobs: make([]realize.Hash, MaxBlobsPerRequest+1)}))
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, data []byte) {
		c := offlineConnWith(mux, true)
		s := newMemStream(ctx, data)
		c.serveStream(s)
		if s.out.Len() == 0 {
			return
		}
		msgs, _, err := parseResponse(s.out.Bytes(), MaxFrameSize)
		if err != nil {
			t.Fatalf("bad response %x: %v", s.out.Bytes(), err)
		}
		codec := newCodec()
		for _, m := range msgs {
			var bf BlockFrame
			if codec.unmarshal(m, &bf) == nil && bf.Data != nil && !known[string(bf.Data)] {
				t.Fatalf("served bytes of no file: %q", bf.Data)
			}
		}
	})
}

// fuzzBlockServer is a Mux serving the sync messages over an arena
// "shared" holding files (each one block), and the files' blob hashes.
func fuzzBlockServer(f *testing.F, files [][]byte) (*Mux, []realize.Hash) {
	id, err := NewIdentity(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	db, err := store.Open(context.Background(), f.TempDir(), store.Options{Peer: id.ID()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	log := history.New(id.ID(), id, nil)
	root := f.TempDir()
	var blobs []realize.Hash
	for i, c := range files {
		if err := os.WriteFile(filepath.Join(root, fmt.Sprintf("f%d", i)), c, 0o644); err != nil {
			f.Fatal(err)
		}
		blobs = append(blobs, blake3.Sum256(c))
	}
	a, err := real.NewArena(real.ArenaOptions{Name: "shared", Root: root, DB: db, Log: log, Self: id.ID()})
	if err == nil {
		err = a.ScanAll(context.Background())
	}
	if err != nil {
		f.Fatal(err)
	}
	mux := NewMux()
	if err := RegisterSync(mux, &SyncData{DB: db, Log: log, Arena: func(n realize.ArenaName) *real.Arena {
		if n == "shared" {
			return a
		}
		return nil
	}}); err != nil {
		f.Fatal(err)
	}
	return mux, blobs
}
