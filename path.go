package realize

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits on names. They bound what a peer has to accept from the network and
// match what common filesystems allow.
const (
	MaxPathLen      = 4096 // bytes in a whole arena-relative path
	MaxNameLen      = 255  // bytes in one path component
	MaxArenaNameLen = 64
)

// Path is a file's location inside an arena: slash-separated, relative,
// clean. The empty Path is the arena root. A Path that exists as a value has
// been validated by ParsePath (or built by Join from validated parts), so
// code below the boundary never has to re-check for "..", NUL or a leading
// slash — that is how invariant 6 (nothing escapes the arena) is kept cheap.
type Path string

// ParsePath validates s as an arena-relative path. It rejects absolute paths,
// empty, "." and ".." components, NUL bytes, invalid UTF-8 (other peers, and
// macOS, could not represent the name) and over-long names.
func ParsePath(s string) (Path, error) {
	if s == "" {
		return "", nil
	}
	if len(s) > MaxPathLen {
		return "", &Error{Op: "parse path", Kind: Invalid, Path: s, Err: errTooLong}
	}
	if !utf8.ValidString(s) {
		return "", &Error{Op: "parse path", Kind: Invalid, Path: s, Err: errNotUTF8}
	}
	if s[0] == '/' {
		return "", &Error{Op: "parse path", Kind: Invalid, Path: s, Err: errAbsolute}
	}
	for _, name := range strings.Split(s, "/") {
		if err := CheckName(name); err != nil {
			return "", &Error{Op: "parse path", Kind: Invalid, Path: s, Err: err}
		}
	}
	return Path(s), nil
}

// CheckName validates one path component, as read from a directory.
func CheckName(name string) error {
	switch {
	case name == "":
		return errEmptyName
	case name == "." || name == "..":
		return errDotName
	case len(name) > MaxNameLen:
		return errTooLong
	case strings.IndexByte(name, 0) >= 0:
		return errNUL
	case strings.IndexByte(name, '/') >= 0:
		return errSlash
	case !utf8.ValidString(name):
		return errNotUTF8
	}
	return nil
}

// Join appends a validated name to p. The caller must have checked name with
// CheckName.
func (p Path) Join(name string) Path {
	if p == "" {
		return Path(name)
	}
	return p + "/" + Path(name)
}

// Dir returns the parent of p ("" for a top-level name and for the root).
func (p Path) Dir() Path {
	if i := strings.LastIndexByte(string(p), '/'); i >= 0 {
		return p[:i]
	}
	return ""
}

// Base returns the last component of p.
func (p Path) Base() string {
	if i := strings.LastIndexByte(string(p), '/'); i >= 0 {
		return string(p[i+1:])
	}
	return string(p)
}

// IsRoot tells whether p is the arena root.
func (p Path) IsRoot() bool { return p == "" }

// HasPrefix tells whether p is dir or lies beneath it.
func (p Path) HasPrefix(dir Path) bool {
	if dir == "" || p == dir {
		return true
	}
	return strings.HasPrefix(string(p), string(dir)) && len(p) > len(dir) && p[len(dir)] == '/'
}

// String returns the path; Quote is the form for human-facing text.
func (p Path) String() string { return string(p) }

// Quote returns p for display: as is when it is plain, Go-quoted when it
// holds characters (newlines, control characters) that would garble a line
// of terminal output.
func (p Path) Quote() string {
	for _, r := range p {
		if r < 0x20 || r == 0x7f || r == '"' || r == '\\' {
			return fmt.Sprintf("%q", string(p))
		}
	}
	return string(p)
}

// ArenaName names an arena: lowercase letters, digits, '.', '_' and '-',
// starting with a letter or digit. Arena names appear in paths, bucket names
// and on the wire, so they are kept boring.
type ArenaName string

// ParseArenaName validates s as an arena name.
func ParseArenaName(s string) (ArenaName, error) {
	if s == "" || len(s) > MaxArenaNameLen {
		return "", &Error{Op: "parse arena name", Kind: Invalid, Path: s, Err: errArenaName}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || i > 0 && (c == '.' || c == '_' || c == '-')
		if !ok {
			return "", &Error{Op: "parse arena name", Kind: Invalid, Path: s, Err: errArenaName}
		}
	}
	return ArenaName(s), nil
}
