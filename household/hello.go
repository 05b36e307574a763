package household

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/realizefs/realize"
)

// Hello is the first request each side of a new connection sends, and is
// sent again when this side's configuration changes. Its response is
// empty.
type Hello struct {
	// Version is the revision of the protocol the sender speaks within
	// ALPN "realize/1": 2 now (2 added SnapshotFrame.Held and SnapshotFrame.Conflicts). A revision may add message types and
	// fields; since decoders reject unknown fields, a sender uses a new
	// field only with a peer whose Hello announced a revision that has it.
	Version uint16 `cbor:"1,keyasint"`
	// Name is the sender's name for itself, for logs and status only:
	// peers are identified by key, and call each other what their own
	// configuration says.
	Name string `cbor:"2,keyasint,omitempty"`
	// Arenas are the arenas the sender shares with the receiver, sorted.
	// An arena is shared only if both sides list it.
	Arenas []realize.ArenaName `cbor:"3,keyasint,omitempty"`
}

// Hello limits.
const (
	MaxHelloName   = 256
	MaxHelloArenas = 512
)

var errNotShared = errors.New("arena is not shared with this peer")

func (m *Hello) validate() error {
	if m.Version < 1 {
		return fmt.Errorf("protocol revision %d", m.Version)
	}
	if len(m.Name) > MaxHelloName {
		return fmt.Errorf("name of %d bytes, limit %d", len(m.Name), MaxHelloName)
	}
	if len(m.Arenas) > MaxHelloArenas {
		return fmt.Errorf("%d arenas, limit %d", len(m.Arenas), MaxHelloArenas)
	}
	for _, a := range m.Arenas {
		if _, err := realize.ParseArenaName(string(a)); err != nil {
			return err
		}
	}
	return nil
}

// helloFor is what this peer tells peer.
func (h *Host) helloFor(peer realize.PeerID) Hello {
	return Hello{Version: h.revision(), Name: h.opts.Name, Arenas: h.localArenas(peer)}
}

// revision is the protocol revision this peer speaks.
func (h *Host) revision() uint16 {
	if h.opts.revision != 0 {
		return h.opts.revision
	}
	return ProtocolVersion
}

// localArenas asks the configuration, every time, which arenas this side
// shares with peer: a change applies to the next request.
func (h *Host) localArenas(peer realize.PeerID) []realize.ArenaName {
	if h.opts.Arenas == nil {
		return nil
	}
	a := slices.Clone(h.opts.Arenas(peer))
	slices.Sort(a)
	return slices.Compact(a)
}

func (h *Host) serveHello(_ context.Context, peer realize.PeerID, req *Request, _ *ResponseWriter) error {
	var m Hello
	if err := req.Decode(&m); err != nil {
		return err
	}
	if err := m.validate(); err != nil {
		return &realize.Error{Op: "hello", Kind: realize.Invalid, Peer: peer, Err: err}
	}
	slices.Sort(m.Arenas)
	m.Arenas = slices.Compact(m.Arenas)
	req.conn.setHello(m)
	return nil
}

func servePing(_ context.Context, _ realize.PeerID, req *Request, _ *ResponseWriter) error {
	var m pingMsg
	return req.Decode(&m)
}

// sendHello tells the peer what this side shares with it.
func (c *Conn) sendHello(ctx context.Context) error {
	m := c.host.helloFor(c.peer)
	return c.Call(ctx, MsgHello, &m, nil)
}

func (c *Conn) setHello(m Hello) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.remote = &m
	if !c.helloSeen {
		c.helloSeen = true
		close(c.helloCh)
	}
}

func (c *Conn) helloReceived() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.helloSeen
}

// Version is the protocol revision both sides speak (see Hello.Version);
// 0 before the peer's Hello.
func (c *Conn) Version() uint16 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.remote == nil {
		return 0
	}
	return min(c.remote.Version, c.host.revision())
}

// PeerName is the name the peer gave itself in its Hello.
func (c *Conn) PeerName() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.remote == nil {
		return ""
	}
	return c.remote.Name
}

// SharedArenas returns the arenas shared with the peer, sorted: those both
// this side's configuration (asked now) and the peer's latest Hello list.
func (c *Conn) SharedArenas() []realize.ArenaName {
	c.mu.Lock()
	var theirs []realize.ArenaName
	if c.remote != nil {
		theirs = c.remote.Arenas
	}
	c.mu.Unlock()
	var out []realize.ArenaName
	for _, a := range c.host.localArenas(c.peer) {
		if _, ok := slices.BinarySearch(theirs, a); ok {
			out = append(out, a)
		}
	}
	return out
}

// RequireArena returns nil if arena is shared with the peer, and a
// Permission error (error code 4 on the wire) otherwise. Every handler
// that reads, lists or changes arena data calls it before anything else:
// enforcement is on the serving side (SPEC §4.1, §5.6).
func (c *Conn) RequireArena(arena realize.ArenaName) error {
	if slices.Contains(c.SharedArenas(), arena) {
		return nil
	}
	return &realize.Error{Op: "serve arena", Kind: realize.Permission, Arena: arena, Peer: c.peer, Err: errNotShared}
}

// RequireArena is Conn.RequireArena on the current connection to peer; with
// no connection nothing is known to be shared.
func (h *Host) RequireArena(peer realize.PeerID, arena realize.ArenaName) error {
	c, ok := h.Conn(peer)
	if !ok {
		return &realize.Error{Op: "serve arena", Kind: realize.Permission, Arena: arena, Peer: peer,
			Err: errors.New("peer is not connected")}
	}
	return c.RequireArena(arena)
}
