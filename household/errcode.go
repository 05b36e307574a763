package household

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/realizefs/realize"
)

// ErrCode is the code of an error frame. Codes below 0x100 are
// realize.ErrKind values, number for number, so an error keeps its kind
// across the wire; codes from 0x100 are the transport's own. The table is
// add-only and written down in docs/protocol.md.
type ErrCode uint16

// Transport error codes (see docs/protocol.md, "Error codes").
const (
	CodeMalformed   ErrCode = 0x100 // a frame is not valid for its place on the stream
	CodeTooLarge    ErrCode = 0x101 // a frame exceeds the limit of its message type
	CodeUnknownType ErrCode = 0x102 // no handler for the message type
	CodeHelloFirst  ErrCode = 0x103 // a request came before the sender's Hello
)

// maxErrMessage bounds the text of an error frame, so that an error frame
// always fits the smallest frame limit (MinFrameSize).
const maxErrMessage = 512

// Kind returns the realize.ErrKind an error code stands for.
func (c ErrCode) Kind() realize.ErrKind {
	switch c {
	case CodeMalformed, CodeTooLarge:
		return realize.Invalid
	case CodeUnknownType:
		return realize.Unsupported
	case CodeHelloFirst:
		return realize.Unavailable
	}
	if c < 0x100 {
		return realize.ErrKind(c)
	}
	return realize.Other // a code from a newer peer
}

func (c ErrCode) String() string {
	switch c {
	case CodeMalformed:
		return "malformed frame"
	case CodeTooLarge:
		return "frame too large"
	case CodeUnknownType:
		return "unknown message type"
	case CodeHelloFirst:
		return "hello not received"
	}
	if c < 0x100 {
		return realize.ErrKind(c).String()
	}
	return fmt.Sprintf("error code %#x", uint16(c))
}

// RemoteError is the error a peer sent in an error frame. Calls return it
// wrapped in a *realize.Error whose Kind is Code.Kind().
type RemoteError struct {
	Code    ErrCode
	Message string
}

func (e *RemoteError) Error() string {
	if e.Message == "" {
		return "peer: " + e.Code.String()
	}
	return "peer: " + e.Message
}

// frameError is a local verdict on a frame: the code to answer with and
// why. It never carries data from the frame itself beyond sizes.
type frameError struct {
	code ErrCode
	msg  string
}

func (e *frameError) Error() string { return e.msg }

func malformed(format string, args ...any) error {
	return &frameError{code: CodeMalformed, msg: fmt.Sprintf(format, args...)}
}

// codeOf picks the error code that answers err.
func codeOf(err error) ErrCode {
	var fe *frameError
	if errors.As(err, &fe) {
		return fe.code
	}
	var re *RemoteError
	if errors.As(err, &re) {
		return re.Code
	}
	return ErrCode(realize.KindOf(err))
}

// cleanText makes s fit an error frame: valid UTF-8 (CBOR text strings
// must be, and messages may quote non-UTF-8 file names) of at most n bytes.
func cleanText(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
