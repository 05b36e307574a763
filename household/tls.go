package household

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/quic-go/quic-go"
	"github.com/realizefs/realize"
)

// ALPN is the TLS application protocol of this version of the wire
// protocol. An incompatible change gets a new one ("realize/2"), so peers
// of different versions fail the handshake instead of misreading frames.
const ALPN = "realize/1"

// ProtocolVersion is the revision of the protocol this peer speaks within
// ALPN "realize/1" (Hello.Version; docs/protocol.md, "Versioning policy"):
// revisions add message types, fields and larger limits, never change what
// a revision-1 peer understands.
const ProtocolVersion = 2

// revisionBulk is the revision from which MsgBlocks accepts a run of any
// length within the blob (1 to MaxBlocksPerRequest before) and MsgBlobs
// is served.
const revisionBulk = 2

// alertNoApplicationProtocol is the TLS alert for an ALPN mismatch; QUIC
// reports TLS alerts as transport error 0x100 + alert.
const alertNoApplicationProtocol = 120

var (
	errUnknownPeer = errors.New("key is not a peer of this household")
	errWrongPeer   = errors.New("key is not the one of the peer dialled")
	errALPN        = errors.New("peer speaks another protocol version (ALPN)")
)

// tlsBase is what both sides of every handshake share. Session tickets
// are off: resumption would save one round trip on reconnects, which are
// rare, and without it every connection proves its key afresh. (Were they
// on, the pin would still hold: crypto/tls runs VerifyConnection "for all
// connections, including resumptions" — see tls.Config.VerifyConnection —
// unlike VerifyPeerCertificate.) 0-RTT is off as well: the client dials
// with Dial, not DialEarly, and the server listens with Listen and
// Allow0RTT unset.
func (h *Host) tlsBase() *tls.Config {
	return &tls.Config{
		MinVersion:             tls.VersionTLS13,
		MaxVersion:             tls.VersionTLS13,
		Certificates:           []tls.Certificate{h.cert},
		NextProtos:             []string{h.alpn},
		SessionTicketsDisabled: true,
		// No CA: the chain is not verified, the key is pinned in
		// VerifyConnection instead.
		InsecureSkipVerify: true,
	}
}

// serverTLS accepts clients whose key is in the household. The config is
// made per handshake so the check knows the remote address to log.
func (h *Host) serverTLS() *tls.Config {
	conf := h.tlsBase()
	conf.ClientAuth = tls.RequireAnyClientCert
	conf.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		remote := remoteOf(hello)
		if !slices.Contains(hello.SupportedProtos, h.alpn) {
			// crypto/tls fails this handshake with no_application_protocol;
			// this says why on our side.
			h.log.Warn("refused protocol version", "remote", remote,
				"offered", hello.SupportedProtos, "want", h.alpn)
		}
		c := h.tlsBase()
		c.ClientAuth = tls.RequireAnyClientCert
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			_, err := h.verifyClient(cs, remote)
			return err
		}
		return c, nil
	}
	return conf
}

func remoteOf(hello *tls.ClientHelloInfo) string {
	if hello.Conn == nil { // quic-go sets it; stay safe if it ever does not
		return "?"
	}
	return hello.Conn.RemoteAddr().String()
}

// verifyClient is the server's pin: the client's key must belong to a
// peer of the household as it is configured right now.
func (h *Host) verifyClient(cs tls.ConnectionState, remote string) (Peer, error) {
	if cs.NegotiatedProtocol != h.alpn {
		return Peer{}, errALPN
	}
	id, err := peerOf(cs)
	if err != nil {
		h.log.Warn("refused peer certificate", "remote", remote, "err", err)
		return Peer{}, err
	}
	p, ok := h.lookup(id)
	if !ok || id == h.id {
		h.log.Warn("refused unknown peer", "key", id.Short(), "remote", remote)
		return Peer{}, fmt.Errorf("%w: %s", errUnknownPeer, id.Short())
	}
	return p, nil
}

// dialCheck is the client's pin for one dial: only the exact key of the
// peer dialled is accepted. It keeps the verdict so the dial error can say
// what went wrong rather than quote a TLS alert.
type dialCheck struct {
	h      *Host
	want   Peer
	remote string

	mu  sync.Mutex
	err error
}

func (d *dialCheck) verify(cs tls.ConnectionState) error {
	err := d.check(cs)
	if err != nil {
		d.mu.Lock()
		d.err = err
		d.mu.Unlock()
	}
	return err
}

func (d *dialCheck) check(cs tls.ConnectionState) error {
	if cs.NegotiatedProtocol != d.h.alpn {
		return errALPN
	}
	id, err := peerOf(cs)
	if err != nil {
		d.h.log.Warn("refused peer certificate", "peer", d.want.ID.Short(), "remote", d.remote, "err", err)
		return err
	}
	if id != d.want.ID {
		d.h.log.Warn("refused unknown peer", "key", id.Short(), "remote", d.remote,
			"want", d.want.ID.Short(), "name", d.want.Name)
		return fmt.Errorf("%w: %s presented %s", errWrongPeer, d.remote, id.Short())
	}
	return nil
}

func (d *dialCheck) verdict() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

// clientTLS is the config for dialling p at remote.
func (h *Host) clientTLS(d *dialCheck) *tls.Config {
	conf := h.tlsBase()
	conf.ServerName = "realize" // not checked; keeps crypto/tls from wanting one
	conf.VerifyConnection = d.verify
	return conf
}

// dialError turns a failed dial into an error that says what to fix.
func dialError(p Peer, d *dialCheck, err error) error {
	e := &realize.Error{Op: "connect to " + p.Address, Kind: realize.Unavailable, Peer: p.ID, Err: err}
	if v := d.verdict(); v != nil {
		e.Err = v
		e.Kind = realize.Permission
		if errors.Is(v, errALPN) {
			e.Kind = realize.Unsupported
		}
		return e
	}
	var te *quic.TransportError
	if errors.As(err, &te) && te.ErrorCode.IsCryptoError() {
		switch {
		case te.ErrorCode == 0x100+alertNoApplicationProtocol:
			e.Kind, e.Err = realize.Unsupported, fmt.Errorf("%w: %v", errALPN, err)
		case te.Remote:
			e.Kind = realize.Permission
			e.Err = fmt.Errorf("peer refused our key (is this peer's household missing us?): %w", err)
		}
		return e
	}
	if errors.Is(err, context.Canceled) {
		e.Kind = realize.Canceled
	}
	return e
}
