package household

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/realizefs/realize"
)

// Block frames carry nearly every byte a sync moves, so they skip the
// generic codec: encoding a 1 MiB block as CBOR, then again inside a
// response frame, copied it twice and allocated twice on the sending
// side, and decoding copied it twice more on the receiving one. The bytes
// on the wire are exactly the codec's (the tests compare them); a frame
// the fast path does not recognise goes through the codec as before.
//
// A data frame holding a BlockFrame is, in core deterministic CBOR:
//
//	a2 01 01 02 a2 01 <uint Index> 02 <byte string header> <Data>
//	map(2) {1: kindData, 2: map(2) {1: Index, 2: bytes(Data)}}
var blockFrameLead = []byte{0xa2, 0x01, byte(kindData), 0x02, 0xa2, 0x01}

// appendCBORHead appends the head of a CBOR item of the given major type
// and argument, in its shortest form (as deterministic encoding requires).
func appendCBORHead(b []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(b, m|byte(n))
	case n <= 0xff:
		return append(b, m|24, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(b, m|25), uint16(n))
	case n <= 0xffffffff:
		return binary.BigEndian.AppendUint32(append(b, m|26), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, m|27), n)
}

// readCBORHead reads the head appendCBORHead writes, refusing any other
// form, and returns the argument and the rest of b.
func readCBORHead(b []byte, major byte) (uint64, []byte, bool) {
	if len(b) == 0 || b[0]>>5 != major {
		return 0, nil, false
	}
	info, b := b[0]&0x1f, b[1:]
	var n uint64
	var size int
	switch {
	case info < 24:
		return uint64(info), b, true
	case info == 24:
		size = 1
	case info == 25:
		size = 2
	case info == 26:
		size = 4
	case info == 27:
		size = 8
	default:
		return 0, nil, false
	}
	if len(b) < size {
		return 0, nil, false
	}
	for _, c := range b[:size] {
		n = n<<8 | uint64(c)
	}
	// Only the shortest form: what the deterministic encoder writes.
	if short := appendCBORHead(nil, major, n); len(short) != 1+size {
		return 0, nil, false
	}
	return n, b[size:], true
}

// blockFrameHead is everything of a block's frame before its data,
// length prefix included, and the frame's size (without the prefix).
func blockFrameHead(index int, n int) ([]byte, int) {
	body := append(make([]byte, 0, 32), blockFrameLead...)
	body = appendCBORHead(body, 0, uint64(index))
	body = append(body, 0x02)
	body = appendCBORHead(body, 2, uint64(n))
	size := len(body) + n
	head := binary.AppendUvarint(make([]byte, 0, len(body)+binary.MaxVarintLen64), uint64(size))
	return append(head, body...), size
}

// SendBlock sends a BlockFrame{Index: index, Data: data} response
// message, as Send would, without copying data.
func (w *ResponseWriter) SendBlock(index int, data []byte) error {
	op := "send " + w.typ.String()
	if w.err != nil {
		return w.err
	}
	head, size := blockFrameHead(index, len(data))
	if index < 0 || size > w.max {
		return &realize.Error{Op: op, Kind: realize.Invalid, Peer: w.peer,
			Err: fmt.Errorf("response of %d bytes exceeds the limit of %d", size, w.max)}
	}
	out := w.out()
	_, err := out.Write(head)
	if err == nil {
		_, err = out.Write(data)
	}
	if err != nil {
		w.err = &realize.Error{Op: op, Kind: realize.Unavailable, Peer: w.peer, Err: err}
		return w.err
	}
	return nil
}

// NextBlock reads the next response message as a BlockFrame. Its data
// aliases a buffer of the Reader, valid until the next call. Other
// frames (the end, an error) are returned as Next returns them.
func (r *Reader) NextBlock() (int, []byte, error) {
	i, data, buf, err := r.nextBlockInto(r.buf)
	r.buf = buf
	return i, data, err
}

// nextBlockInto is NextBlock reading into buf, grown if too small; it
// returns the buffer it used, for the caller to reuse.
func (r *Reader) nextBlockInto(buf []byte) (int, []byte, []byte, error) {
	if r.err != nil {
		return 0, nil, buf, r.err
	}
	n, err := readLen(r.br, r.max)
	if err != nil {
		return 0, nil, buf, r.frameFailed(err)
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	b := buf[:n]
	if _, err := io.ReadFull(r.br, b); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			err = malformed("truncated frame: want %d bytes", n)
		}
		return 0, nil, buf, r.frameFailed(err)
	}
	if i, data, ok := parseBlockFrame(b); ok {
		return i, data, buf, nil
	}
	var f BlockFrame
	if err := r.decode(b, &f); err != nil {
		return 0, nil, buf, err
	}
	return f.Index, f.Data, buf, nil
}

// parseBlockFrame recognises the codec's encoding of a data frame holding
// a BlockFrame; data aliases b.
func parseBlockFrame(b []byte) (int, []byte, bool) {
	if len(b) < len(blockFrameLead) || string(b[:len(blockFrameLead)]) != string(blockFrameLead) {
		return 0, nil, false
	}
	index, rest, ok := readCBORHead(b[len(blockFrameLead):], 0)
	if !ok || index > 1<<31 || len(rest) == 0 || rest[0] != 0x02 {
		return 0, nil, false
	}
	n, data, ok := readCBORHead(rest[1:], 2)
	if !ok || n != uint64(len(data)) {
		return 0, nil, false
	}
	return int(index), data, true
}
