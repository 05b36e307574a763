package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/realizefs/realize"
)

// AddPeer appends p to the config file at path as a commented [[peer]]
// table, leaving every other byte of the file as it was, and returns the
// config as it now loads. It refuses a peer named like this peer or like
// another peer, a key another peer already has, and an address that is not
// HOST:PORT. Checking that p is not this peer's own key is the caller's
// business: the key lives in the data directory, not in the config.
func AddPeer(path string, p Peer) (*Config, error) {
	return edit(path, "add peer", func(c *Config, doc []byte) ([]byte, error) {
		if err := checkNewPeer(c, p); err != nil {
			return nil, err
		}
		return appendPeer(doc, p), nil
	})
}

// RemovePeer deletes the [[peer]] table called name from the config file
// at path: exactly its lines, and the blank line AddPeer put before it. It
// refuses while an arena's peers list names the peer (the user decides what
// that arena's list becomes), and returns the config as it now loads.
func RemovePeer(path, name string) (*Config, error) {
	return edit(path, "remove peer", func(c *Config, doc []byte) ([]byte, error) {
		if _, ok := c.Peer(name); !ok {
			return nil, refuse(realize.NotExist, "no peer is called %q (see `realize peer list`)", name)
		}
		if err := checkUnreferenced(c, doc, name); err != nil {
			return nil, err
		}
		start, end, ok := peerBlock(doc, name)
		if !ok {
			return nil, refuse(realize.Invalid, "peer %q is not written as a [[peer]] table; edit the file by hand", name)
		}
		return cutLines(doc, start, end), nil
	})
}

// refusal is a change that edit refuses, with the kind of error to report.
type refusal struct {
	kind realize.ErrKind
	msg  string
}

func (r *refusal) Error() string { return r.msg }

func refuse(kind realize.ErrKind, format string, args ...any) error {
	return &refusal{kind: kind, msg: fmt.Sprintf(format, args...)}
}

func checkNewPeer(c *Config, p Peer) error {
	switch {
	case p.Name == "":
		return refuse(realize.Invalid, "the peer's name is empty")
	case !validPeerName(p.Name):
		return refuse(realize.Invalid, "%q: peer names are up to 64 characters without spaces", p.Name)
	case p.Name == c.Name:
		return refuse(realize.Invalid, "%q is this peer's own name; give the other machine another one", p.Name)
	}
	for _, q := range c.Peers {
		if q.Name == p.Name {
			return refuse(realize.Exist, "a peer is already called %q (key %s…); `realize peer remove %s` first to replace it", p.Name, q.Key.Short(), p.Name)
		}
		if q.Key == p.Key {
			return refuse(realize.Exist, "peer %q already has key %s…", q.Name, p.Key.Short())
		}
	}
	return checkAddress(p.Address)
}

// checkAddress accepts "" (a deaf peer) or HOST:PORT with a port from 1 to
// 65535, the rule Load applies, checked first for a message without a line.
func checkAddress(a string) error {
	if a == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil || host == "" {
		return refuse(realize.Invalid, "address %q is not HOST:PORT (e.g. nas.lan:7741)", a)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return refuse(realize.Invalid, "address %q: the port must be a number from 1 to 65535", a)
	}
	return nil
}

// checkUnreferenced refuses removing a peer that arenas' peers lists name,
// pointing at the lines to change.
func checkUnreferenced(c *Config, doc []byte, name string) error {
	ps := indexPositions(doc)
	var where []string
	for i, a := range c.Arenas {
		if len(a.Peers) > 0 && a.SharedWith(name) {
			where = append(where, fmt.Sprintf("arena %s (%s:%d)", a.Name, c.File, ps.line(fmt.Sprintf("arena[%d].peers", i))))
		}
	}
	if len(where) == 0 {
		return nil
	}
	return refuse(realize.Invalid, "peer %q is in the peers list of %s; take it out of that list first",
		name, strings.Join(where, ", "))
}

// appendPeer returns doc with p's table at the end, after a blank line, in
// the file's own line ending.
func appendPeer(doc []byte, p Peer) []byte {
	nl := "\n"
	if bytes.Contains(doc, []byte("\r\n")) {
		nl = "\r\n"
	}
	var b bytes.Buffer
	b.Write(doc)
	if len(doc) > 0 && !bytes.HasSuffix(doc, []byte("\n")) {
		b.WriteString(nl)
	}
	// Comments go before the last key-value: RemovePeer takes the table's
	// lines up to there.
	lines := []string{"", "[[peer]]", "# Added by `realize peer add`."}
	if p.Address == "" {
		lines = append(lines, "# No address: a deaf peer, it dials this one.")
	}
	lines = append(lines, "name = "+quote(p.Name), "key = "+quote(p.Key.String()))
	if p.Address != "" {
		lines = append(lines, "address = "+quote(p.Address))
	}
	for _, l := range lines {
		b.WriteString(l + nl)
	}
	return b.Bytes()
}

// cutLines returns doc without lines start..end (1-based, inclusive), and
// without the blank line before them when a blank line or the end of the
// file follows, so an add then a remove gives back the original bytes.
func cutLines(doc []byte, start, end int) []byte {
	lines := bytes.SplitAfter(doc, []byte("\n"))
	from, to := start-1, end // lines[from:to] go
	blank := func(i int) bool { return i >= 0 && i < len(lines) && len(bytes.TrimSpace(lines[i])) == 0 }
	if blank(from-1) && (to >= len(lines) || blank(to)) {
		from--
	}
	var b bytes.Buffer
	for i, l := range lines {
		if i < from || i >= to {
			b.Write(l)
		}
	}
	return b.Bytes()
}

// edit runs change on the config file at path under the file's lock,
// checks that the result loads, and replaces the file with it atomically.
func edit(path, op string, change func(c *Config, doc []byte) ([]byte, error)) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, &realize.Error{Op: op, Kind: realize.Invalid, Path: path, Err: err}
	}
	// A symlinked config (dotfiles) is edited where it points: replacing
	// the link with a file would quietly detach it from the user's repo.
	target, err := filepath.EvalSymlinks(abs)
	if err != nil {
		_, lerr := Load(abs) // the same message as any command that needs the file
		return nil, lerr
	}
	unlock, err := lockFile(target)
	if err != nil {
		return nil, &realize.Error{Op: op, Kind: realize.IO, Path: target, Err: err}
	}
	defer unlock()
	doc, err := os.ReadFile(target)
	if err != nil {
		return nil, &realize.Error{Op: op, Kind: realize.IO, Path: target, Err: err}
	}
	c, err := Parse(abs, doc)
	if err != nil {
		return nil, err // the file is broken already: editing it would hide that
	}
	out, err := change(c, doc)
	if err != nil {
		kind := realize.Invalid
		var r *refusal
		if errors.As(err, &r) {
			kind = r.kind
		}
		return nil, &realize.Error{Op: op, Kind: kind, Err: err}
	}
	nc, err := Parse(abs, out)
	if err != nil {
		return nil, &realize.Error{Op: op, Kind: realize.Invalid,
			Err: fmt.Errorf("the edited config would not load, so the file was left as it was: %v", err)}
	}
	if err := writeAtomic(target, out); err != nil {
		return nil, &realize.Error{Op: op, Kind: realize.IO, Path: target, Err: err}
	}
	return nc, nil
}
