package household

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/realizefs/realize"
)

// Call sends req as a request of type t and decodes the one response
// message into resp. With resp nil it expects no response message. ctx
// bounds the whole call (its deadline becomes the stream's). A failure the
// peer reported is a *realize.Error wrapping a *RemoteError.
func (c *Conn) Call(ctx context.Context, t MsgType, req, resp any) error {
	r, err := c.Stream(ctx, t, req)
	if err != nil {
		return err
	}
	defer r.Close()
	if resp != nil {
		if err := r.Next(resp); err != nil {
			if errors.Is(err, io.EOF) {
				return r.fail(malformed("no response message"))
			}
			return err
		}
	}
	switch err := r.Next(nil); {
	case errors.Is(err, io.EOF):
		return nil
	case err == nil:
		return r.fail(malformed("unexpected response message"))
	default:
		return err
	}
}

// Stream sends req as a request of type t and returns a Reader for the
// response messages. The caller must Close the Reader; ctx bounds the
// whole exchange.
func (c *Conn) Stream(ctx context.Context, t MsgType, req any) (*Reader, error) {
	op := "call " + t.String()
	rt, ok := c.host.route(t)
	if !ok {
		return nil, &realize.Error{Op: op, Kind: realize.Unsupported, Peer: c.peer, Err: errors.New("message type not registered")}
	}
	frame, err := c.encodeRequest(t, req)
	if err != nil {
		return nil, &realize.Error{Op: op, Kind: realize.Invalid, Peer: c.peer, Err: err}
	}
	if len(frame) > rt.max {
		return nil, &realize.Error{Op: op, Kind: realize.Invalid, Peer: c.peer,
			Err: fmt.Errorf("request of %d bytes exceeds the limit of %d", len(frame), rt.max)}
	}
	s, err := c.qc.OpenStreamSync(ctx)
	if err != nil {
		return nil, c.streamError(ctx, op, err)
	}
	// Cancelling ctx resets both directions, which unblocks any read or
	// write in progress and tells the server to stop.
	stop := context.AfterFunc(ctx, func() {
		s.CancelRead(streamCanceled)
		s.CancelWrite(streamCanceled)
	})
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	r := &Reader{conn: c, s: s, br: bufio.NewReaderSize(s, readBufSize), max: rt.max, op: op, ctx: ctx, stop: stop}
	if err := writeFrame(s, frame); err != nil {
		// The server may have refused the request and said why: prefer
		// its error frame to our write error.
		if rerr := r.Next(nil); rerr != nil && !errors.Is(rerr, io.EOF) && realize.KindOf(rerr) != realize.Unavailable {
			r.Close()
			return nil, rerr
		}
		r.Close()
		return nil, c.streamError(ctx, op, err)
	}
	s.Close() // the request is one frame
	return r, nil
}

func (c *Conn) encodeRequest(t MsgType, req any) ([]byte, error) {
	var body []byte
	if req != nil {
		var err error
		if body, err = c.host.codec.marshal(req); err != nil {
			return nil, err
		}
	}
	return c.host.codec.marshal(requestHeader{Type: t, Body: body})
}

// streamError classifies a failure of the stream itself.
func (c *Conn) streamError(ctx context.Context, op string, err error) error {
	kind := realize.Unavailable
	switch {
	case ctx.Err() != nil:
		kind, err = realize.Canceled, context.Cause(ctx)
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The stream's deadline is ctx's, and may fire a moment before it.
		kind = realize.Canceled
	}
	return &realize.Error{Op: op, Kind: kind, Peer: c.peer, Err: err}
}

// Reader reads the response messages of one request.
type Reader struct {
	conn *Conn
	s    stream
	br   *bufio.Reader
	max  int
	op   string
	ctx  context.Context
	stop func() bool
	err  error  // sticky: io.EOF after the end frame, or the failure
	buf  []byte // NextBlock's frame buffer, reused from block to block
}

// Next decodes the next response message into v (nil: discard it). It
// returns io.EOF once the response is complete, and the peer's error if it
// ended the response with one.
func (r *Reader) Next(v any) error {
	if r.err != nil {
		return r.err
	}
	b, err := readFrame(r.br, r.max)
	if err != nil {
		return r.frameFailed(err)
	}
	return r.decode(b, v)
}

// frameFailed handles a frame that could not be read.
func (r *Reader) frameFailed(err error) error {
	var fe *frameError
	if errors.As(err, &fe) {
		return r.fail(err)
	}
	if errors.Is(err, io.EOF) {
		return r.fail(malformed("response ended without an end frame"))
	}
	return r.finish(r.conn.streamError(r.ctx, r.op, err))
}

// decode handles one response frame: a message decoded into v, the end
// (io.EOF) or the peer's error.
func (r *Reader) decode(b []byte, v any) error {
	var f responseFrame
	if err := r.conn.host.codec.unmarshal(b, &f); err != nil {
		return r.fail(err)
	}
	switch f.Kind {
	case kindData:
		if v == nil {
			return nil
		}
		if err := r.conn.host.codec.unmarshal(f.Body, v); err != nil {
			return r.fail(err)
		}
		return nil
	case kindEnd:
		return r.finish(io.EOF)
	case kindError:
		var eb errorBody
		if err := r.conn.host.codec.unmarshal(f.Body, &eb); err != nil {
			return r.fail(err)
		}
		return r.finish(&realize.Error{Op: r.op, Kind: eb.Code.Kind(), Peer: r.conn.peer,
			Err: &RemoteError{Code: eb.Code, Message: eb.Message}})
	}
	return r.fail(malformed("unknown response frame kind %d", f.Kind))
}

// fail abandons the stream after a bad response frame.
func (r *Reader) fail(err error) error {
	r.s.CancelRead(streamRejected)
	return r.finish(&realize.Error{Op: r.op, Kind: realize.Invalid, Peer: r.conn.peer, Err: err})
}

func (r *Reader) finish(err error) error {
	r.err = err
	return err
}

// Close releases the stream. Closing before the end of the response tells
// the server to stop.
func (r *Reader) Close() error {
	r.stop()
	code := streamDone
	if r.err == nil {
		r.err = &realize.Error{Op: r.op, Kind: realize.Canceled, Peer: r.conn.peer, Err: errors.New("reader closed")}
		code = streamCanceled
	}
	// Reading stops here; this also lets QUIC retire the stream without
	// waiting for the server's FIN.
	r.s.CancelRead(code)
	return nil
}
