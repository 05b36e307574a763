package household

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/realizefs/realize"
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
