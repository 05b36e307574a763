package household

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/realizefs/realize"
)

// memStream is a request stream in memory: the request is read from in,
// the response collects in out.
type memStream struct {
	in        *bytes.Reader
	out       bytes.Buffer
	ctx       context.Context
	closed    bool
	readCode  *quic.StreamErrorCode
	writeCode *quic.StreamErrorCode
}

func newMemStream(ctx context.Context, in []byte) *memStream {
	return &memStream{in: bytes.NewReader(in), ctx: ctx}
}

func (m *memStream) Read(p []byte) (int, error) { return m.in.Read(p) }

func (m *memStream) Write(p []byte) (int, error) {
	if m.closed || m.writeCode != nil {
		return 0, errors.New("write after close")
	}
	return m.out.Write(p)
}

func (m *memStream) Close() error                       { m.closed = true; return nil }
func (m *memStream) CancelRead(c quic.StreamErrorCode)  { m.readCode = &c }
func (m *memStream) CancelWrite(c quic.StreamErrorCode) { m.writeCode = &c }
func (m *memStream) SetReadDeadline(time.Time) error    { return nil }
func (m *memStream) Context() context.Context           { return m.ctx }

// offlineConn is a Conn with no network under it, for serveStream.
func offlineConn(tb testing.TB, helloDone bool) *Conn { return offlineConnWith(testMux(tb), helloDone) }

// request encodes a request stream: header frame and nothing after.
func request(tb testing.TB, t MsgType, body any) []byte {
	c := newCodec()
	var raw []byte
	if body != nil {
		var err error
		if raw, err = c.marshal(body); err != nil {
			tb.Fatal(err)
		}
	}
	hdr, err := c.marshal(requestHeader{Type: t, Body: raw})
	if err != nil {
		tb.Fatal(err)
	}
	var buf bytes.Buffer
	_ = writeFrame(&buf, hdr)
	return buf.Bytes()
}

// parseResponse checks out is a well-formed response: data frames, then
// one end or error frame, then nothing. It returns the data bodies and the
// error, if the response ended with one.
func parseResponse(out []byte, max int) (data [][]byte, rerr *errorBody, err error) {
	c := newCodec()
	br := bufio.NewReader(bytes.NewReader(out))
	for {
		b, err := readFrame(br, max)
		if err != nil {
			return data, nil, fmt.Errorf("response cut short: %w", err)
		}
		var f responseFrame
		if err := c.unmarshal(b, &f); err != nil {
			return data, nil, err
		}
		switch f.Kind {
		case kindData:
			data = append(data, f.Body)
			continue
		case kindError:
			rerr = &errorBody{}
			if err := c.unmarshal(f.Body, rerr); err != nil {
				return data, nil, err
			}
		case kindEnd:
		default:
			return data, nil, fmt.Errorf("frame kind %d", f.Kind)
		}
		if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
			return data, rerr, errors.New("data after the last frame")
		}
		return data, rerr, nil
	}
}

// noError is a code no error frame carries, for tables.
const noError ErrCode = 0xffff

func TestServeStream(t *testing.T) {
	tests := []struct {
		name  string
		hello bool
		in    []byte
		data  int     // response messages expected
		code  ErrCode // error code expected; noError = none
	}{
		{"echo", true, request(t, msgEcho, &echoMsg{Text: "hi"}), 1, noError},
		{"count", true, request(t, msgCount, &echoMsg{N: 3}), 3, noError},
		{"shared arena", true, request(t, msgArena, &arenaReq{Arena: "shared"}), 1, noError},
		{"arena only we share", true, request(t, msgArena, &arenaReq{Arena: "ours"}), 0, ErrCode(realize.Permission)},
		{"arena only they share", true, request(t, msgArena, &arenaReq{Arena: "theirs"}), 0, ErrCode(realize.Permission)},
		{"request before hello", false, request(t, msgEcho, &echoMsg{Text: "hi"}), 0, CodeHelloFirst},
		{"arena before hello", false, request(t, msgArena, &arenaReq{Arena: "shared"}), 0, CodeHelloFirst},
		{"hello", false, request(t, MsgHello, &Hello{Version: 1, Arenas: []realize.ArenaName{"a"}}), 0, noError},
		{"hello with a bad arena", false, request(t, MsgHello, &Hello{Version: 1, Arenas: []realize.ArenaName{"../x"}}), 0, ErrCode(realize.Invalid)},
		{"hello of revision 0", false, request(t, MsgHello, &Hello{}), 0, ErrCode(realize.Invalid)},
		{"ping", true, request(t, MsgPing, nil), 0, noError},
		{"panic", true, request(t, msgPanic, nil), 0, ErrCode(realize.Other)},
		{"handler error", true, request(t, msgFail, &echoMsg{Text: "gone", N: int(realize.NotExist)}), 0, ErrCode(realize.NotExist)},
		{"not served", true, request(t, msgClient, nil), 0, CodeUnknownType},
		{"unknown type", true, request(t, 0x999, nil), 0, CodeUnknownType},
		{"bad body", true, request(t, msgEcho, "a string"), 0, CodeMalformed},
		{"trailing data", true, append(request(t, MsgPing, nil), 0), 0, CodeMalformed},
		{"garbage", true, []byte{3, 0xff, 0xff, 0xff}, 0, CodeMalformed},
		{"oversized", true, []byte{0xff, 0xff, 0xff, 0xff, 0x0f}, 0, CodeTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := offlineConn(t, tt.hello)
			s := newMemStream(t.Context(), tt.in)
			c.serveStream(s)
			if !s.closed || s.writeCode != nil {
				t.Fatalf("stream not ended cleanly: closed %v, write reset %v", s.closed, s.writeCode)
			}
			data, rerr, err := parseResponse(s.out.Bytes(), DefaultFrameSize)
			if err != nil {
				t.Fatal(err)
			}
			if len(data) != tt.data {
				t.Errorf("%d response messages, want %d", len(data), tt.data)
			}
			switch {
			case tt.code == noError && rerr != nil:
				t.Errorf("error %v: %s", rerr.Code, rerr.Message)
			case tt.code != noError && (rerr == nil || rerr.Code != tt.code):
				t.Errorf("error %+v, want code %v", rerr, tt.code)
			}
		})
	}
}

func TestServeStreamEmptyAndReset(t *testing.T) {
	c := offlineConn(t, true)
	s := newMemStream(t.Context(), nil) // opened and closed with no request
	c.serveStream(s)
	if s.out.Len() != 0 || !s.closed {
		t.Errorf("empty stream: wrote %d bytes, closed %v", s.out.Len(), s.closed)
	}
}

func TestHelloUpdatesArenas(t *testing.T) {
	c := offlineConn(t, true)
	if got := fmt.Sprint(c.SharedArenas()); got != "[shared]" {
		t.Fatalf("shared %s", got)
	}
	s := newMemStream(t.Context(), request(t, MsgHello, &Hello{Version: 3, Arenas: []realize.ArenaName{"ours", "ours", "shared"}}))
	c.serveStream(s)
	if got := fmt.Sprint(c.SharedArenas()); got != "[ours shared]" {
		t.Errorf("after a new Hello: shared %s", got)
	}
	if c.Version() != ProtocolVersion {
		t.Errorf("version %d: a newer peer speaks ours", c.Version())
	}
}

func TestMuxRegister(t *testing.T) {
	m := NewMux()
	nop := func(context.Context, realize.PeerID, *Request, *ResponseWriter) error { return nil }
	tests := []struct {
		name string
		t    MsgType
		max  int
		kind realize.ErrKind // 0: accepted
	}{
		{"default size", 0x20, 0, 0},
		{"block data", 0x21, 1<<20 + 64, 0},
		{"smallest", 0x22, MinFrameSize, 0},
		{"largest", 0x23, MaxFrameSize, 0},
		{"duplicate", 0x20, 0, realize.Exist},
		{"reserved", MsgPing, 0, realize.Invalid},
		{"reserved range", 0x000f, 0, realize.Invalid},
		{"too small", 0x24, MinFrameSize - 1, realize.Invalid},
		{"too large", 0x25, MaxFrameSize + 1, realize.Invalid},
	}
	for _, tt := range tests {
		err := m.Register(tt.t, tt.max, nop)
		if realize.KindOf(err) != tt.kind || (tt.kind != 0) != (err != nil) {
			t.Errorf("%s: %v, want kind %v", tt.name, err, tt.kind)
		}
	}
	if r, ok := m.route(0x20); !ok || r.max != DefaultFrameSize {
		t.Errorf("route 0x20 = %+v, %v", r, ok)
	}
	if m.maxFrame() != MaxFrameSize {
		t.Errorf("maxFrame %d", m.maxFrame())
	}
}

func TestBackoffDelay(t *testing.T) {
	lo, hi := 500*time.Millisecond, 2*time.Minute
	tests := []struct {
		n        int
		r        float64
		min, max time.Duration
	}{
		{0, 0, 250 * time.Millisecond, 250 * time.Millisecond},
		{0, 0.999, 499 * time.Millisecond, 500 * time.Millisecond},
		{1, 0.999, 999 * time.Millisecond, time.Second},
		{3, 0, 2 * time.Second, 2 * time.Second},
		{8, 0.999, hi - time.Second, hi},    // 128 s capped
		{1000, 0.5, hi * 3 / 4, hi * 3 / 4}, // no overflow
	}
	for _, tt := range tests {
		d := backoffDelay(tt.n, lo, hi, tt.r)
		if d < tt.min || d > tt.max {
			t.Errorf("attempt %d, r %v: %v, want %v..%v", tt.n, tt.r, d, tt.min, tt.max)
		}
	}
}

func TestErrCodes(t *testing.T) {
	// Codes are add-only: these numbers are in docs/protocol.md.
	tests := []struct {
		code ErrCode
		num  uint16
		kind realize.ErrKind
	}{
		{ErrCode(realize.Invalid), 1, realize.Invalid},
		{ErrCode(realize.Permission), 4, realize.Permission},
		{ErrCode(realize.Canceled), 12, realize.Canceled},
		{CodeMalformed, 0x100, realize.Invalid},
		{CodeTooLarge, 0x101, realize.Invalid},
		{CodeUnknownType, 0x102, realize.Unsupported},
		{CodeHelloFirst, 0x103, realize.Unavailable},
		{0x1ff, 0x1ff, realize.Other},
	}
	for _, tt := range tests {
		if uint16(tt.code) != tt.num || tt.code.Kind() != tt.kind {
			t.Errorf("%v: %#x kind %v, want %#x kind %v", tt.code, uint16(tt.code), tt.code.Kind(), tt.num, tt.kind)
		}
	}
	if got := cleanText("a\xffb"+string(make([]byte, 600)), 3); got != "a" {
		t.Errorf("cleanText = %q", got)
	}
}
