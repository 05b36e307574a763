package household

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/fxamacker/cbor/v2"
)

// Frame size limits. Every frame on a stream is bounded by the limit of the
// stream's message type (Mux.Register); these bound the limits themselves.
const (
	DefaultFrameSize = 64 << 10 // limit of a type registered with maxSize 0
	MinFrameSize     = 1 << 10  // an error frame must always fit
	MaxFrameSize     = 16 << 20 // the largest limit a type may have
)

// CBOR decoding limits, on top of the byte limit of each frame. The byte
// limit already bounds how much a frame can allocate (every element costs
// at least one byte); these keep deeply nested or very wide values, which
// are cheap to send and expensive to walk, out.
const (
	maxNesting     = 12
	maxArrayLen    = 1 << 17
	maxMapPairs    = 1 << 12
	smallFrameSize = 4 << 10 // below this, a frame is written with one Write
)

// MsgType names the request a stream carries. Types are add-only: a
// number, once given a meaning in docs/protocol.md, keeps it.
type MsgType uint16

// Message types of the transport itself. 0x0001–0x000F are reserved for it.
const (
	MsgHello MsgType = 0x0001 // the first request on a connection, both ways
	MsgPing  MsgType = 0x0002 // liveness check; empty request and response
)

func (t MsgType) String() string {
	switch t {
	case MsgHello:
		return "hello"
	case MsgPing:
		return "ping"
	}
	return fmt.Sprintf("msg %#04x", uint16(t))
}

// requestHeader is the first frame of every stream.
type requestHeader struct {
	Type MsgType         `cbor:"1,keyasint"`
	Body cbor.RawMessage `cbor:"2,keyasint,omitempty"`
}

// frameKind says what a response frame is.
type frameKind uint8

const (
	kindData  frameKind = 1 // one response message
	kindEnd   frameKind = 2 // the response is complete
	kindError frameKind = 3 // the request failed; Body is an errorBody
)

// responseFrame is every frame the serving side sends.
type responseFrame struct {
	Kind frameKind       `cbor:"1,keyasint"`
	Body cbor.RawMessage `cbor:"2,keyasint,omitempty"`
}

type errorBody struct {
	Code    ErrCode `cbor:"1,keyasint"`
	Message string  `cbor:"2,keyasint,omitempty"`
}

// codec holds the CBOR modes of the wire protocol. Encoding is RFC 8949
// core deterministic, so the same message is always the same bytes.
type codec struct {
	enc cbor.EncMode
	dec cbor.DecMode
}

func newCodec() *codec {
	enc, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err) // static options: cannot fail
	}
	dec, err := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		MaxNestedLevels:   maxNesting,
		MaxArrayElements:  maxArrayLen,
		MaxMapPairs:       maxMapPairs,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return &codec{enc: enc, dec: dec}
}

func (c *codec) marshal(v any) ([]byte, error) { return c.enc.Marshal(v) }

// unmarshal decodes b into v; any failure is a malformed frame.
func (c *codec) unmarshal(b []byte, v any) error {
	if err := c.dec.Unmarshal(b, v); err != nil {
		return malformed("bad CBOR: %v", err)
	}
	return nil
}

// readLen reads a frame's length prefix: a minimal uvarint, 1..max. It
// stops as soon as the value can only exceed max, so a hostile prefix
// costs at most a few bytes.
func readLen(r io.ByteReader, max int) (int, error) {
	var x uint64
	for i, shift := 0, uint(0); i < binary.MaxVarintLen64; i, shift = i+1, shift+7 {
		b, err := r.ReadByte()
		if err != nil {
			if i > 0 && errors.Is(err, io.EOF) {
				return 0, malformed("truncated frame length")
			}
			return 0, err
		}
		if i > 0 && b == 0 {
			return 0, malformed("non-minimal frame length")
		}
		x |= uint64(b&0x7f) << shift
		if x > uint64(max) {
			return 0, &frameError{code: CodeTooLarge,
				msg: fmt.Sprintf("frame of %d bytes or more exceeds the limit of %d", x, max)}
		}
		if b < 0x80 {
			if x == 0 {
				return 0, malformed("empty frame")
			}
			return int(x), nil
		}
	}
	return 0, malformed("frame length overflows")
}

// readFrame reads one frame of at most max bytes. A clean end of stream
// before the frame is io.EOF; a frame cut short is malformed; other read
// errors (resets, deadlines) are returned as they are.
func readFrame(r *bufio.Reader, max int) ([]byte, error) {
	n, err := readLen(r, max)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, malformed("truncated frame: want %d bytes", n)
		}
		return nil, err
	}
	return buf, nil
}

// writeFrame writes b as one frame.
func writeFrame(w io.Writer, b []byte) error {
	var prefix [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(prefix[:], uint64(len(b)))
	if len(b) < smallFrameSize {
		// One write, so a small frame does not become two packets.
		_, err := w.Write(append(prefix[:n:n], b...))
		return err
	}
	if _, err := w.Write(prefix[:n]); err != nil {
		return err
	}
	_, err := w.Write(b)
	return err
}
