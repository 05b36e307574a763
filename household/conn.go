package household

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/realizefs/realize"
)

// QUIC connection close codes (docs/protocol.md).
const (
	closeShutdown  quic.ApplicationErrorCode = 0 // the peer is stopping
	closeDuplicate quic.ApplicationErrorCode = 1 // another connection to the same peer is kept
	closeRemoved   quic.ApplicationErrorCode = 2 // the peer is no longer in the household
	closeProtocol  quic.ApplicationErrorCode = 3 // Hello failed
)

// Conn is the one connection to a peer. Either side may open requests on
// it, whoever dialled.
type Conn struct {
	host   *Host
	qc     *quic.Conn
	peer   realize.PeerID
	name   string         // the peer's name in this side's configuration
	dialer realize.PeerID // who dialled: decides which of two connections stays
	tie    []byte         // the same value at both ends, distinct per connection
	since  time.Time

	mu         sync.Mutex
	remote     *Hello
	helloSeen  bool
	helloCh    chan struct{} // closed at the peer's first Hello
	registered bool          // guarded by host.mu: OnConnect was sent, OnDisconnect not yet
	batchers   map[realize.ArenaName]*blobBatcher
}

func newConn(h *Host, qc *quic.Conn, p Peer, dialledByUs bool) *Conn {
	c := &Conn{host: h, qc: qc, peer: p.ID, name: p.Name, since: h.clock.Now(), helloCh: make(chan struct{})}
	c.dialer = p.ID
	if dialledByUs {
		c.dialer = h.id
	}
	// A TLS exporter value is secret, random and known to both ends only:
	// just what a tie-break both must agree on needs.
	cs := qc.ConnectionState().TLS
	c.tie, _ = cs.ExportKeyingMaterial("realize tie-break", nil, 16)
	return c
}

// Peer returns the id of the peer at the other end.
func (c *Conn) Peer() realize.PeerID { return c.peer }

// Name returns the peer's name in this side's configuration.
func (c *Conn) Name() string { return c.name }

// RemoteAddr returns the peer's current UDP address.
func (c *Conn) RemoteAddr() net.Addr { return c.qc.RemoteAddr() }

// Since returns when the connection was established.
func (c *Conn) Since() time.Time { return c.since }

// Done is closed when the connection is gone.
func (c *Conn) Done() <-chan struct{} { return c.qc.Context().Done() }

// Err says why the connection is gone (nil while it is up).
func (c *Conn) Err() error {
	if c.qc.Context().Err() == nil {
		return nil
	}
	return context.Cause(c.qc.Context())
}

func (c *Conn) alive() bool { return c.qc.Context().Err() == nil }

func (c *Conn) close(code quic.ApplicationErrorCode, why string) {
	_ = c.qc.CloseWithError(code, why)
}

// pingMsg is the Ping request. Its padding makes the packet larger than
// the smallest one that draws a stateless reset (RFC 9000 §10.3: tiny
// packets go unanswered, lest resets ping-pong), so a peer that restarted
// kills a connection of its previous process at once instead of leaving
// the ping to time out.
type pingMsg struct {
	Pad []byte `cbor:"1,keyasint,omitempty"`
}

const pingPad = 48

// ping checks that the peer still answers on this connection.
func (c *Conn) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	return c.Call(ctx, MsgPing, &pingMsg{Pad: make([]byte, pingPad)}, nil)
}

// acceptStreams serves the peer's requests until the connection ends.
// QUIC's stream limit (Options.MaxStreams) bounds how many run at once.
func (c *Conn) acceptStreams() {
	for {
		s, err := c.qc.AcceptStream(context.Background())
		if err != nil {
			return
		}
		c.host.wg.Go(func() { c.serveStream(s) })
	}
}

// exchangeHello sends this side's Hello and waits for the peer's.
func (c *Conn) exchangeHello(ctx context.Context) error {
	if err := c.sendHello(ctx); err != nil {
		return err
	}
	select {
	case <-c.helloCh:
		return nil
	case <-c.Done():
		return &realize.Error{Op: "hello", Kind: realize.Unavailable, Peer: c.peer, Err: c.Err()}
	case <-ctx.Done():
		return &realize.Error{Op: "hello", Kind: realize.Unavailable, Peer: c.peer, Err: context.Cause(ctx)}
	}
}

// adopt takes a new connection through Hello and registration. It returns
// the connection that serves the peer afterwards: c, or the one kept
// instead of it.
func (h *Host) adopt(ctx context.Context, qc *quic.Conn, p Peer, dialledByUs bool) (*Conn, error) {
	c := newConn(h, qc, p, dialledByUs)
	h.wg.Go(c.acceptStreams)
	hctx, cancel := context.WithTimeout(ctx, helloTimeout)
	defer cancel()
	if err := c.exchangeHello(hctx); err != nil {
		c.close(closeProtocol, "hello failed")
		return nil, err
	}
	return h.register(ctx, c)
}

// register makes c the connection to its peer, unless another one is to
// stay. Of two live connections between the same pair, the one dialled by
// the smaller peer id stays, so both ends keep the same one without
// talking about it (if both dialled, that is, which is rare; see yields);
// of two dialled by the same peer, the one with the smaller tie value. An
// existing connection the rule prefers stays only if it still answers a
// ping: a stale one (the peer restarted, the network changed) must not
// lock the peer out until the idle timeout.
func (h *Host) register(ctx context.Context, c *Conn) (*Conn, error) {
	for {
		h.mu.Lock()
		if h.stopping {
			h.mu.Unlock()
			c.close(closeShutdown, "shutting down")
			return nil, &realize.Error{Op: "connect", Kind: realize.Canceled, Peer: c.peer, Err: errors.New("transport stopping")}
		}
		old := h.conns[c.peer]
		if old == nil || !old.alive() || prefer(c, old) {
			h.install(c, old)
			h.mu.Unlock()
			if old != nil {
				old.close(closeDuplicate, "replaced by another connection")
			}
			return c, nil
		}
		h.mu.Unlock()
		err := old.ping(ctx)
		if err == nil {
			h.log.Debug("closed duplicate connection", "peer", c.peer.Short(), "remote", c.qc.RemoteAddr().String())
			c.close(closeDuplicate, "duplicate connection")
			return old, nil
		}
		h.log.Info("closed stale connection", "peer", c.peer.Short(), "err", err)
		old.close(closeDuplicate, "stale connection")
	}
}

// prefer tells whether a is to be kept rather than b.
func prefer(a, b *Conn) bool {
	if a.dialer != b.dialer {
		return bytes.Compare(a.dialer[:], b.dialer[:]) < 0
	}
	return bytes.Compare(a.tie, b.tie) < 0
}

// install makes c the peer's connection in place of old; h.mu is held.
func (h *Host) install(c, old *Conn) {
	if old != nil {
		h.unlink(old)
	}
	h.conns[c.peer] = c
	c.registered = true
	h.ev.push(c, true)
	h.log.Info("peer connected", "peer", c.peer.Short(), "name", c.name,
		"remote", c.qc.RemoteAddr().String(), "dialled", c.dialer == h.id)
	h.wg.Go(func() {
		<-c.Done()
		h.mu.Lock()
		defer h.mu.Unlock()
		h.unlink(c)
	})
}

// unlink forgets c as its peer's connection, once; h.mu is held.
func (h *Host) unlink(c *Conn) {
	if !c.registered {
		return
	}
	c.registered = false
	if h.conns[c.peer] == c {
		delete(h.conns, c.peer)
	}
	st := h.state(c.peer)
	st.lastSeen = h.clock.Now()
	reason := "replaced"
	if err := c.Err(); err != nil {
		reason = err.Error()
		if !isLocalClose(err) {
			st.lastErr = reason
		}
	}
	h.ev.push(c, false)
	h.log.Info("peer disconnected", "peer", c.peer.Short(), "name", c.name, "reason", reason)
}

// isLocalClose tells whether err is this side closing on purpose, which
// is not worth reporting as the peer's last error.
func isLocalClose(err error) bool {
	var ae *quic.ApplicationError
	return errors.As(err, &ae) && !ae.Remote
}
