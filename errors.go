package realize

import (
	"errors"
	"strings"
)

// ErrKind classifies an error so callers (and the CLI's exit-code mapping,
// and later the wire protocol) can act on it without parsing messages.
// The numeric values cross process boundaries: they are add-only.
type ErrKind uint16

const (
	Other       ErrKind = 0  // unclassified
	Invalid     ErrKind = 1  // bad input: a path, a name, a flag, a config value
	NotExist    ErrKind = 2  // no such file, arena, peer, entry
	Exist       ErrKind = 3  // already exists (init over an existing config)
	Permission  ErrKind = 4  // the OS refused access
	IO          ErrKind = 5  // a read or write failed
	Corrupt     ErrKind = 6  // stored data failed a check (hash, chain, signature, schema)
	Busy        ErrKind = 7  // held by someone else (a second daemon on one data dir)
	Unavailable ErrKind = 8  // the daemon (or a peer) cannot be reached
	Conflict    ErrKind = 9  // concurrent versions of a path
	Unsupported ErrKind = 10 // not possible on this OS or in this version
	Changed     ErrKind = 11 // the file changed while being read; try again later
	Canceled    ErrKind = 12 // the operation was canceled
	NotEmpty    ErrKind = 13 // a directory that must be empty is not
	IsDir       ErrKind = 14 // a directory where a file was expected
	NotDir      ErrKind = 15 // a file where a directory was expected
)

var kindNames = [...]string{
	Other: "error", Invalid: "invalid", NotExist: "not found", Exist: "already exists",
	Permission: "permission denied", IO: "I/O error", Corrupt: "corrupt data",
	Busy: "busy", Unavailable: "unavailable", Conflict: "conflict",
	Unsupported: "unsupported", Changed: "changed while reading", Canceled: "canceled",
	NotEmpty: "directory not empty", IsDir: "is a directory", NotDir: "not a directory",
}

func (k ErrKind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "error"
}

// Error is the error type of Realize: what was being done (Op), to what
// (Arena, Path, Peer), what kind of failure it was, and the cause.
type Error struct {
	Op    string    // e.g. "hash file", "open database"
	Kind  ErrKind   // classification
	Arena ArenaName // arena concerned, if any
	Path  string    // a file path (arena-relative or OS), if any
	Peer  PeerID    // peer concerned, if any
	Err   error     // the underlying error, if any
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	if e.Arena != "" {
		b.WriteString(" ")
		b.WriteString(string(e.Arena))
		if e.Path != "" {
			b.WriteString(":")
			b.WriteString(Path(e.Path).Quote())
		}
	} else if e.Path != "" {
		b.WriteString(" ")
		b.WriteString(Path(e.Path).Quote())
	}
	if !e.Peer.IsZero() {
		b.WriteString(" (peer ")
		b.WriteString(e.Peer.Short())
		b.WriteString(")")
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	} else if e.Kind != Other {
		b.WriteString(": ")
		b.WriteString(e.Kind.String())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the kind of the outermost *Error in err's chain that has
// one, or Other.
func KindOf(err error) ErrKind {
	for err != nil {
		var e *Error
		if !errors.As(err, &e) {
			return Other
		}
		if e.Kind != Other {
			return e.Kind
		}
		err = e.Err
	}
	return Other
}

// E builds an *Error. It is a convenience for the common case.
func E(op string, kind ErrKind, err error) *Error {
	return &Error{Op: op, Kind: kind, Err: err}
}

var (
	errTooLong   = errors.New("name too long")
	errNotUTF8   = errors.New("name is not valid UTF-8")
	errAbsolute  = errors.New("absolute path")
	errEmptyName = errors.New("empty path component")
	errDotName   = errors.New("'.' or '..' path component")
	errNUL       = errors.New("NUL byte in name")
	errSlash     = errors.New("'/' in name")
	errArenaName = errors.New("arena names are 1-64 of a-z 0-9 . _ - starting with a letter or digit")
)
