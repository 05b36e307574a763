package household

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/realizefs/realize"
)

func TestReadFrame(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		max  int
		want string // frame contents, or the error's code
		rest int    // bytes left unread after the call
	}{
		{"one byte", []byte{1, 'x'}, 10, "x", 0},
		{"exactly the limit", append([]byte{3}, "abc"...), 3, "abc", 0},
		{"two-byte length", append([]byte{0x80, 0x01}, strings.Repeat("y", 128)...), 200, strings.Repeat("y", 128), 0},
		{"leaves the next frame", []byte{1, 'a', 1, 'b'}, 10, "a", 2},
		{"clean end", nil, 10, "EOF", 0},
		{"over the limit", append([]byte{4}, "abcd"...), 3, CodeTooLarge.String(), 4},
		// A huge prefix is refused as soon as it must exceed the limit:
		// after its first byte here, the rest stays unread.
		{"huge prefix", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 100, CodeTooLarge.String(), 9},
		{"empty frame", []byte{0}, 10, CodeMalformed.String(), 0},
		{"non-minimal", []byte{0x81, 0x00, 'x'}, 1000, CodeMalformed.String(), 1},
		{"overflow", bytes.Repeat([]byte{0x80}, 11), 1 << 62, CodeMalformed.String(), 1},
		{"truncated length", []byte{0x80}, 1000, CodeMalformed.String(), 0},
		{"truncated body", []byte{5, 'a', 'b'}, 10, CodeMalformed.String(), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := bytes.NewReader(tt.in)
			br := bufio.NewReaderSize(r, 16) // the minimum: exercise refills
			got, err := readFrame(br, tt.max)
			var fe *frameError
			switch {
			case err == nil:
				if string(got) != tt.want {
					t.Errorf("got %q, want %q", got, tt.want)
				}
			case errors.Is(err, io.EOF):
				if tt.want != "EOF" {
					t.Errorf("got EOF, want %q", tt.want)
				}
			case errors.As(err, &fe):
				if fe.code.String() != tt.want {
					t.Errorf("got %v (%v), want %q", fe.code, err, tt.want)
				}
			default:
				t.Fatalf("unexpected error %v", err)
			}
			if left := r.Len() + br.Buffered(); left != tt.rest {
				t.Errorf("%d bytes left unread, want %d", left, tt.rest)
			}
		})
	}
}

func TestWriteFrameRoundTrip(t *testing.T) {
	for _, n := range []int{1, 127, 128, smallFrameSize - 1, smallFrameSize, 1 << 20} {
		var buf bytes.Buffer
		in := bytes.Repeat([]byte{byte(n)}, n)
		if err := writeFrame(&buf, in); err != nil {
			t.Fatal(err)
		}
		got, err := readFrame(bufio.NewReader(&buf), n)
		if err != nil || !bytes.Equal(got, in) || buf.Len() != 0 {
			t.Errorf("%d bytes: got %d bytes, %v, %d left", n, len(got), err, buf.Len())
		}
	}
}

func TestCodecIsStrict(t *testing.T) {
	c := newCodec()
	var h requestHeader
	tests := []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"valid", []byte{0xa1, 0x01, 0x10}, true},
		{"unknown field", []byte{0xa2, 0x01, 0x10, 0x03, 0x00}, false},
		{"duplicate key", []byte{0xa2, 0x01, 0x10, 0x01, 0x11}, false},
		{"indefinite map", []byte{0xbf, 0x01, 0x10, 0xff}, false},
		{"tag", []byte{0xc0, 0xa1, 0x01, 0x10}, false},
		{"trailing bytes", []byte{0xa1, 0x01, 0x10, 0x00}, false},
		{"type too wide", []byte{0xa1, 0x01, 0x1a, 0x00, 0x01, 0x00, 0x00}, false},
	}
	for _, tt := range tests {
		if err := c.unmarshal(tt.in, &h); (err == nil) != tt.ok {
			t.Errorf("%s: err = %v", tt.name, err)
		}
	}
	nested := func(depth int) []byte { return append(bytes.Repeat([]byte{0x81}, depth), 0x00) }
	var v any
	if err := c.unmarshal(nested(maxNesting-1), &v); err != nil {
		t.Errorf("nesting %d refused: %v", maxNesting-1, err)
	}
	if err := c.unmarshal(nested(maxNesting+1), &v); err == nil {
		t.Errorf("nesting %d accepted", maxNesting+1)
	}
	// Encoding is canonical: map keys sorted, shortest forms.
	b, err := c.marshal(&errorBody{Code: 4, Message: "m"})
	if err != nil || !bytes.Equal(b, []byte{0xa2, 0x01, 0x04, 0x02, 0x61, 'm'}) {
		t.Errorf("encoding %x, %v", b, err)
	}
}

// TestWireExamples keeps the examples of docs/protocol.md true.
func TestWireExamples(t *testing.T) {
	c := newCodec()
	frame := func(v any) string {
		b, err := c.marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		_ = writeFrame(&buf, b)
		return fmt.Sprintf("% x", buf.Bytes())
	}
	eb, _ := c.marshal(&errorBody{Code: ErrCode(realize.Permission), Message: "no"})
	hello, _ := c.marshal(&Hello{Version: 1, Arenas: []realize.ArenaName{"a"}})
	for _, tt := range []struct{ got, want string }{
		{frame(requestHeader{Type: MsgPing}), "03 a1 01 02"},
		{frame(responseFrame{Kind: kindEnd}), "03 a1 01 02"},
		{frame(responseFrame{Kind: kindError, Body: eb}), "0b a2 01 03 02 a2 01 04 02 62 6e 6f"},
		{frame(requestHeader{Type: MsgHello, Body: hello}), "0b a2 01 01 02 a2 01 01 03 81 61 61"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %s, want %s", tt.got, tt.want)
		}
	}
}
