package household

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/realizefs/realize"
)

// Reconcile applies the household as Peers returns it now: connections to
// peers no longer in it are closed, dialling starts for new peers with an
// address and stops for peers without one, and every connected peer is
// sent a fresh Hello, since which arenas are shared may have changed.
func (h *Host) Reconcile(ctx context.Context) error {
	h.mu.Lock()
	runCtx := h.ctx
	h.mu.Unlock()
	if runCtx == nil || runCtx.Err() != nil {
		return &realize.Error{Op: "reconcile peers", Kind: realize.Unavailable, Err: errors.New("transport not running")}
	}
	h.reconcile(runCtx)
	h.mu.Lock()
	conns := make([]*Conn, 0, len(h.conns))
	for _, c := range h.conns {
		conns = append(conns, c)
	}
	h.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, helloTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() {
			// A peer that cannot be told now is told at its next connect.
			if err := c.sendHello(ctx); err != nil && c.alive() {
				h.log.Info("hello failed", "peer", c.peer.Short(), "name", c.name, "err", err)
			}
		})
	}
	wg.Wait()
	return nil
}

func (h *Host) reconcile(runCtx context.Context) {
	want := map[realize.PeerID]Peer{}
	for _, p := range h.opts.Peers() {
		if p.ID != h.id {
			want[p.ID] = p
		}
	}
	h.mu.Lock()
	if h.stopping {
		h.mu.Unlock()
		return
	}
	var drop []*Conn
	for id, c := range h.conns {
		if _, ok := want[id]; !ok {
			drop = append(drop, c)
		}
	}
	for id, d := range h.dialers {
		if p, ok := want[id]; !ok || p.Address == "" {
			d.cancel()
			delete(h.dialers, id)
		}
	}
	for id, p := range want {
		if p.Address != "" && h.dialers[id] == nil {
			h.startDialer(runCtx, id)
		}
	}
	h.mu.Unlock()
	for _, c := range drop {
		h.log.Info("disconnecting removed peer", "peer", c.peer.Short(), "name", c.name)
		c.close(closeRemoved, "removed from the household")
	}
}

// dialer keeps one peer connected; h.mu guards the map it is in.
type dialer struct{ cancel context.CancelFunc }

// startDialer starts dialling peer id; h.mu is held.
func (h *Host) startDialer(runCtx context.Context, id realize.PeerID) {
	ctx, cancel := context.WithCancel(runCtx)
	d := &dialer{cancel: cancel}
	h.dialers[id] = d
	h.wg.Go(func() {
		h.dialLoop(ctx, id)
		cancel()
		h.mu.Lock()
		if h.dialers[id] == d {
			delete(h.dialers, id)
		}
		h.mu.Unlock()
	})
}

// dialLoop keeps peer id connected until ctx ends or the peer loses its
// address: it waits while a connection (either side's) is up, and redials
// with capped exponential backoff when there is none.
func (h *Host) dialLoop(ctx context.Context, id realize.PeerID) {
	attempt := 0
	for ctx.Err() == nil {
		if c, ok := h.Conn(id); ok {
			select {
			case <-c.Done():
			case <-ctx.Done():
				return
			}
			if h.clock.Now().Sub(c.since) >= backoffReset {
				attempt = 0
			}
			if _, ok := h.Conn(id); ok {
				continue // another connection took over
			}
			if !sleep(ctx, h.backoff(attempt)) {
				return
			}
			attempt++
			continue
		}
		p, ok := h.lookup(id)
		if !ok || p.Address == "" {
			return
		}
		if attempt == 0 && h.yields(id) {
			// The peer's dial would win the tie-break anyway: give it a
			// moment to arrive, rather than connect twice and drop one.
			if !sleep(ctx, h.backoff(1)) {
				return
			}
			if _, ok := h.Conn(id); ok {
				continue
			}
		}
		if err := h.dial(ctx, p); err != nil {
			if ctx.Err() != nil {
				return
			}
			delay := h.backoff(attempt)
			attempt++
			h.noteError(id, err)
			h.log.Info("dial failed", "peer", id.Short(), "name", p.Name, "address", p.Address,
				"err", err, "retry_in", delay.Round(time.Millisecond))
			if !sleep(ctx, delay) {
				return
			}
		}
	}
}

// yields tells whether this side should let peer dial first: when both
// dial, the connection dialled by the smaller id stays (see register), and
// a peer can only dial us if we listen.
func (h *Host) yields(peer realize.PeerID) bool {
	return h.ln != nil && bytes.Compare(peer[:], h.id[:]) < 0
}

// dial connects to p and adopts the connection.
func (h *Host) dial(ctx context.Context, p Peer) error {
	addr, err := h.resolve(ctx, p.Address)
	if err != nil {
		return &realize.Error{Op: "connect to " + p.Address, Kind: realize.Unavailable, Peer: p.ID, Err: err}
	}
	check := &dialCheck{h: h, want: p, remote: addr.String()}
	dctx, cancel := context.WithTimeout(ctx, 2*handshakeTimeout)
	defer cancel()
	qc, err := h.tr.Dial(dctx, addr, h.clientTLS(check), h.qconf)
	if err != nil {
		return dialError(p, check, err)
	}
	if _, err := h.adopt(ctx, qc, p, true); err != nil {
		// In TLS 1.3 the client is done before the server has checked its
		// certificate: a refusal of our key arrives here, at Hello.
		return dialError(p, check, err)
	}
	return nil
}

// resolve looks address up, preferring the address family of the local
// socket when it is bound to one.
func (h *Host) resolve(ctx context.Context, address string) (*net.UDPAddr, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	pn, err := net.DefaultResolver.LookupPort(ctx, "udp", port)
	if err != nil {
		return nil, err
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, err
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("no address for %q", host)
	}
	pick := ips[0]
	if local, ok := h.tr.Conn.LocalAddr().(*net.UDPAddr); ok && !local.IP.IsUnspecified() {
		want4 := local.IP.To4() != nil
		for _, ip := range ips {
			if ip.Unmap().Is4() == want4 {
				pick = ip
				break
			}
		}
	}
	return net.UDPAddrFromAddrPort(netip.AddrPortFrom(pick.Unmap(), uint16(pn))), nil
}

// acceptLoop accepts connections until the listener closes. The handshake
// has already refused keys outside the household.
func (h *Host) acceptLoop(ctx context.Context) {
	for {
		qc, err := h.ln.Accept(ctx)
		if err != nil {
			return
		}
		h.wg.Go(func() { h.accepted(ctx, qc) })
	}
}

func (h *Host) accepted(ctx context.Context, qc *quic.Conn) {
	id, err := peerOf(qc.ConnectionState().TLS)
	p, known := h.lookup(id)
	if err != nil || !known { // removed between handshake and now
		_ = qc.CloseWithError(closeRemoved, "not in the household")
		return
	}
	if _, err := h.adopt(ctx, qc, p, false); err != nil && ctx.Err() == nil {
		h.noteError(id, err)
		h.log.Info("incoming connection failed", "peer", id.Short(), "name", p.Name,
			"remote", qc.RemoteAddr().String(), "err", err)
	}
}

// backoff returns the delay before redial attempt n (from 0): BackoffMin
// doubling up to BackoffMax, scaled by a random factor in [0.5, 1) so that
// peers that lost each other at the same moment do not redial in lockstep.
func (h *Host) backoff(n int) time.Duration {
	return backoffDelay(n, h.opts.BackoffMin, h.opts.BackoffMax, h.jitter())
}

func backoffDelay(n int, lo, hi time.Duration, r float64) time.Duration {
	d := lo
	for i := 0; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return time.Duration(float64(d) * (0.5 + r/2))
}

// jitter returns a number in [0, 1) from Options.Rand (0.5 if it fails).
func (h *Host) jitter() float64 {
	var b [8]byte
	h.randMu.Lock()
	_, err := io.ReadFull(h.opts.Rand, b[:])
	h.randMu.Unlock()
	if err != nil {
		return 0.5
	}
	return float64(binary.LittleEndian.Uint64(b[:])>>11) / (1 << 53)
}

// sleep waits d or until ctx ends; it tells whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
