package household

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/realizefs/realize"
)

// stream is the part of *quic.Stream the protocol uses; tests and fuzz
// targets put an in-memory stream in its place.
type stream interface {
	io.Reader
	io.Writer
	Close() error
	CancelRead(quic.StreamErrorCode)
	CancelWrite(quic.StreamErrorCode)
	SetReadDeadline(time.Time) error
	Context() context.Context
}

// QUIC stream error codes, sent when a stream is abandoned rather than
// ended with a frame (docs/protocol.md, "Stream and connection codes").
const (
	streamDone     quic.StreamErrorCode = 0 // nothing more is wanted
	streamCanceled quic.StreamErrorCode = 1 // the caller gave up
	streamRejected quic.StreamErrorCode = 2 // a frame was malformed or too large
)

// headerTimeout bounds how long a stream may hold a slot without sending
// its request. Network deadlines use the real clock: quic-go does.
const headerTimeout = 10 * time.Second

const readBufSize = 4 << 10

// serveStream answers one request stream: read the request, run its
// handler, end the stream. Nothing a peer sends can make it panic or touch
// another stream; a malformed request gets an error frame on its stream.
func (c *Conn) serveStream(s stream) {
	br := bufio.NewReaderSize(s, readBufSize)
	_ = s.SetReadDeadline(time.Now().Add(headerTimeout))
	req, rt, err := c.readRequest(br)
	if err != nil {
		c.reject(s, err)
		return
	}
	w := &ResponseWriter{s: s, codec: c.host.codec, typ: req.Type, peer: c.peer, max: rt.max}
	err = c.callHandler(s.Context(), rt.handler, req, w)
	if err != nil {
		c.host.log.Debug("request failed", "peer", c.peer.Short(), "type", req.Type.String(), "err", err)
	}
	if w.finish(err) != nil {
		s.CancelWrite(streamRejected)
		return
	}
	s.Close()
}

// readRequest reads the request: one header frame, then the end of the
// stream's request direction.
func (c *Conn) readRequest(br *bufio.Reader) (*Request, route, error) {
	b, err := readFrame(br, c.host.maxRequest())
	if err != nil {
		return nil, route{}, err
	}
	var hdr requestHeader
	if err := c.host.codec.unmarshal(b, &hdr); err != nil {
		return nil, route{}, err
	}
	rt, ok := c.host.route(hdr.Type)
	switch {
	case !ok || rt.handler == nil:
		return nil, route{}, &frameError{code: CodeUnknownType, msg: fmt.Sprintf("%v is not served here", hdr.Type)}
	case len(b) > rt.max:
		return nil, route{}, &frameError{code: CodeTooLarge,
			msg: fmt.Sprintf("request of %d bytes exceeds the limit of %d for %v", len(b), rt.max, hdr.Type)}
	case hdr.Type != MsgHello && !c.helloReceived():
		return nil, route{}, &frameError{code: CodeHelloFirst, msg: "send Hello first"}
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		if err == nil {
			err = malformed("data after the request frame")
		}
		return nil, route{}, err
	}
	return &Request{Type: hdr.Type, Peer: c.peer, body: hdr.Body, conn: c, codec: c.host.codec}, rt, nil
}

// reject ends a stream whose request could not be read: with an error
// frame if the request was bad, silently if the stream itself failed
// (reset, deadline) since no one is reading then.
func (c *Conn) reject(s stream, err error) {
	if errors.Is(err, io.EOF) { // opened and closed without a request
		s.CancelRead(streamDone)
		s.Close()
		return
	}
	s.CancelRead(streamRejected)
	var fe *frameError
	if !errors.As(err, &fe) {
		s.CancelWrite(streamRejected)
		return
	}
	c.host.log.Info("rejected request", "peer", c.peer.Short(), "code", fe.code.String(), "err", fe.msg)
	w := &ResponseWriter{s: s, codec: c.host.codec, peer: c.peer, max: MinFrameSize}
	if w.finish(err) != nil {
		s.CancelWrite(streamRejected)
		return
	}
	s.Close()
}

// callHandler runs h, turning a panic into an error: a bug in one handler
// must not take the daemon down with it.
func (c *Conn) callHandler(ctx context.Context, h HandlerFunc, req *Request, w *ResponseWriter) (err error) {
	defer func() {
		if p := recover(); p != nil {
			c.host.log.Error("handler panicked", "peer", c.peer.Short(), "type", req.Type.String(),
				"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = &realize.Error{Op: "serve " + req.Type.String(), Kind: realize.Other, Peer: c.peer,
				Err: errors.New("internal error")}
		}
	}()
	return h(ctx, req.Peer, req, w)
}
