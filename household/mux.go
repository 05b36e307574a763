package household

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/fxamacker/cbor/v2"
	"github.com/realizefs/realize"
)

// HandlerFunc serves one request of a registered message type. It reads
// the request with req.Decode, sends zero or more response messages with
// w.Send, and returns nil to end the response or an error to end it with
// an error frame (its realize.ErrKind becomes the error code). ctx ends
// when the caller gives up or the connection closes. Handlers that serve
// arena data call req.RequireArena first. w must not be used once the
// handler has returned.
type HandlerFunc func(ctx context.Context, peer realize.PeerID, req *Request, w *ResponseWriter) error

type route struct {
	max     int         // bytes of any frame on a stream of this type
	handler HandlerFunc // nil: we call this type but do not serve it
}

// firstUserType is the lowest message type Mux accepts: the ones below are
// the transport's own (Hello, Ping, and room to grow).
const firstUserType MsgType = 0x0010

// Mux maps message types to their frame limit and handler. Both sides of a
// call consult it: the server to bound and route requests, the client to
// bound responses, so every type a peer calls must be registered, with a
// nil handler if it only calls it. It is safe for concurrent use.
type Mux struct {
	mu     sync.RWMutex
	routes map[MsgType]route
	max    int
}

// NewMux returns an empty Mux.
func NewMux() *Mux { return &Mux{routes: make(map[MsgType]route)} }

// Register declares message type t: every frame of its streams, request
// and responses alike, is at most maxSize bytes (0 means
// DefaultFrameSize), and h serves it (nil: this peer does not).
func (m *Mux) Register(t MsgType, maxSize int, h HandlerFunc) error {
	const op = "register message type"
	if maxSize == 0 {
		maxSize = DefaultFrameSize
	}
	switch {
	case t < firstUserType:
		return &realize.Error{Op: op, Kind: realize.Invalid, Err: fmt.Errorf("%v is reserved for the transport", t)}
	case maxSize < MinFrameSize || maxSize > MaxFrameSize:
		return &realize.Error{Op: op, Kind: realize.Invalid,
			Err: fmt.Errorf("%v: frame limit %d is outside %d..%d", t, maxSize, MinFrameSize, MaxFrameSize)}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, dup := m.routes[t]; dup {
		return &realize.Error{Op: op, Kind: realize.Exist, Err: fmt.Errorf("%v is registered already", t)}
	}
	m.routes[t] = route{max: maxSize, handler: h}
	m.max = max(m.max, maxSize)
	return nil
}

func (m *Mux) route(t MsgType) (route, bool) {
	if m == nil {
		return route{}, false
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	r, ok := m.routes[t]
	return r, ok
}

// maxFrame is the largest limit of any type: a request header is checked
// against it before its type is known.
func (m *Mux) maxFrame() int {
	if m == nil {
		return 0
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.max
}

// Request is one received request.
type Request struct {
	Type  MsgType
	Peer  realize.PeerID
	body  cbor.RawMessage
	conn  *Conn
	codec *codec
}

// Decode decodes the request message into v. A message that does not fit
// v (unknown fields included) is an Invalid error; a request without a
// message leaves v as it is.
func (r *Request) Decode(v any) error {
	if len(r.body) == 0 {
		return nil
	}
	if err := r.codec.unmarshal(r.body, v); err != nil {
		return &realize.Error{Op: "decode " + r.Type.String(), Kind: realize.Invalid, Peer: r.Peer, Err: err}
	}
	return nil
}

// Conn returns the connection the request came on.
func (r *Request) Conn() *Conn { return r.conn }

// RequireArena returns nil if arena is shared with the requesting peer,
// and a Permission error otherwise; see Conn.RequireArena.
func (r *Request) RequireArena(arena realize.ArenaName) error {
	return r.conn.RequireArena(arena)
}

// ResponseWriter sends the response messages of one request.
type ResponseWriter struct {
	s     stream
	codec *codec
	typ   MsgType
	peer  realize.PeerID
	max   int
	err   error         // sticky: after a failed write the stream is unusable
	bw    *bufio.Writer // set by Buffer
}

// Buffer makes the writer gather response frames, up to n bytes, and
// write them to the stream together (and the rest when the handler
// returns). For many small messages: each write to a stream waits until
// the transport has taken the bytes, a wait per message otherwise.
func (w *ResponseWriter) Buffer(n int) {
	if w.bw == nil {
		w.bw = bufio.NewWriterSize(w.s, n)
	}
}

// out is where frames go: the buffer, if any, or the stream.
func (w *ResponseWriter) out() io.Writer {
	if w.bw != nil {
		return w.bw
	}
	return w.s
}

// Send sends v as one response message. A message larger than the type's
// frame limit is an Invalid error and is not sent; the handler may send
// something else or fail.
func (w *ResponseWriter) Send(v any) error {
	op := "send " + w.typ.String()
	if w.err != nil {
		return w.err
	}
	body, err := w.codec.marshal(v)
	if err != nil {
		return &realize.Error{Op: op, Kind: realize.Invalid, Peer: w.peer, Err: err}
	}
	frame, err := w.codec.marshal(responseFrame{Kind: kindData, Body: body})
	if err != nil {
		return &realize.Error{Op: op, Kind: realize.Invalid, Peer: w.peer, Err: err}
	}
	if len(frame) > w.max {
		return &realize.Error{Op: op, Kind: realize.Invalid, Peer: w.peer,
			Err: fmt.Errorf("response of %d bytes exceeds the limit of %d", len(frame), w.max)}
	}
	if err := writeFrame(w.out(), frame); err != nil {
		w.err = &realize.Error{Op: op, Kind: realize.Unavailable, Peer: w.peer, Err: err}
		return w.err
	}
	return nil
}

// finish ends the response: with an end frame if err is nil, with an
// error frame otherwise.
func (w *ResponseWriter) finish(err error) error {
	if w.err != nil {
		return w.err
	}
	f := responseFrame{Kind: kindEnd}
	if err != nil {
		body, merr := w.codec.marshal(errorBody{Code: codeOf(err), Message: cleanText(err.Error(), maxErrMessage)})
		if merr != nil {
			return merr
		}
		f = responseFrame{Kind: kindError, Body: body}
	}
	frame, err := w.codec.marshal(f)
	if err != nil {
		return err
	}
	w.err = writeFrame(w.out(), frame)
	if w.err == nil && w.bw != nil {
		w.err = w.bw.Flush()
	}
	return w.err
}
