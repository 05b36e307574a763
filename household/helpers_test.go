package household

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/realizefs/realize"
)

// Test message types.
const (
	msgEcho   MsgType = 0x7f10 // Call: the request back
	msgCount  MsgType = 0x7f11 // Stream: N messages
	msgArena  MsgType = 0x7f12 // Call: an arena's "data", after RequireArena
	msgSlow   MsgType = 0x7f13 // blocks until the caller gives up
	msgPanic  MsgType = 0x7f14 // the handler panics
	msgFail   MsgType = 0x7f15 // fails with the kind asked for
	msgBig    MsgType = 0x7f16 // tries to send a response over the limit
	msgClient MsgType = 0x7f17 // registered without a handler
)

type echoMsg struct {
	Text string `cbor:"1,keyasint,omitempty"`
	N    int    `cbor:"2,keyasint,omitempty"`
}

type arenaReq struct {
	Arena realize.ArenaName `cbor:"1,keyasint"`
}

// testMux registers the test message types.
func testMux(t testing.TB) *Mux {
	m := NewMux()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(m.Register(msgEcho, 0, func(_ context.Context, _ realize.PeerID, req *Request, w *ResponseWriter) error {
		var in echoMsg
		if err := req.Decode(&in); err != nil {
			return err
		}
		return w.Send(&in)
	}))
	must(m.Register(msgCount, 0, func(_ context.Context, _ realize.PeerID, req *Request, w *ResponseWriter) error {
		var in echoMsg
		if err := req.Decode(&in); err != nil {
			return err
		}
		if in.N > 1000 {
			return &realize.Error{Op: "count", Kind: realize.Invalid}
		}
		for i := range in.N {
			if err := w.Send(&echoMsg{Text: in.Text, N: i}); err != nil {
				return err
			}
		}
		return nil
	}))
	must(m.Register(msgArena, 0, func(_ context.Context, _ realize.PeerID, req *Request, w *ResponseWriter) error {
		var in arenaReq
		if err := req.Decode(&in); err != nil {
			return err
		}
		if err := req.RequireArena(in.Arena); err != nil {
			return err
		}
		return w.Send(&echoMsg{Text: "data of " + string(in.Arena)})
	}))
	must(m.Register(msgSlow, 0, func(ctx context.Context, _ realize.PeerID, _ *Request, w *ResponseWriter) error {
		if err := w.Send(&echoMsg{Text: "started"}); err != nil {
			return err
		}
		<-ctx.Done()
		return ctx.Err()
	}))
	must(m.Register(msgPanic, 0, func(context.Context, realize.PeerID, *Request, *ResponseWriter) error {
		panic("handler bug")
	}))
	must(m.Register(msgFail, 0, func(_ context.Context, _ realize.PeerID, req *Request, _ *ResponseWriter) error {
		var in echoMsg
		if err := req.Decode(&in); err != nil {
			return err
		}
		return &realize.Error{Op: "fail", Kind: realize.ErrKind(in.N), Err: errors.New(in.Text)}
	}))
	must(m.Register(msgBig, MinFrameSize, func(_ context.Context, _ realize.PeerID, _ *Request, w *ResponseWriter) error {
		return w.Send(&echoMsg{Text: strings.Repeat("x", 2*MinFrameSize)})
	}))
	must(m.Register(msgClient, 0, nil))
	return m
}

// logBuf collects a host's log lines.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// node is one peer in a test household.
type node struct {
	t      *testing.T
	name   string
	ident  *Identity
	listen string // "" = deaf
	log    *logBuf
	mux    *Mux
	tweak  func(*Options) // adjusts options() for one test

	mu     sync.Mutex
	peers  []Peer
	arenas map[realize.PeerID][]realize.ArenaName
	ups    []*Conn
	downs  []*Conn

	host   *Host
	cancel context.CancelFunc
	ran    chan error
}

func newNode(t *testing.T, name string, listen bool) *node {
	t.Helper()
	id, err := NewIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{t: t, name: name, ident: id, log: &logBuf{}, mux: testMux(t),
		arenas: map[realize.PeerID][]realize.ArenaName{}}
	if listen {
		n.listen = "127.0.0.1:0"
	}
	return n
}

func (n *node) options() Options {
	o := Options{
		Identity: n.ident, Name: n.name, Listen: n.listen, LocalAddr: "127.0.0.1:0",
		Peers: n.getPeers, Arenas: n.getArenas, Mux: n.mux,
		OnConnect:    func(c *Conn) { n.mu.Lock(); n.ups = append(n.ups, c); n.mu.Unlock() },
		OnDisconnect: func(c *Conn) { n.mu.Lock(); n.downs = append(n.downs, c); n.mu.Unlock() },
		Logger:       slog.New(slog.NewTextHandler(n.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		KeepAlive:    300 * time.Millisecond,
		IdleTimeout:  5 * time.Second,
		// Long enough that the peer with the larger id, holding back its
		// first dial for one step, rarely races the other's dial.
		BackoffMin: 100 * time.Millisecond,
		BackoffMax: 500 * time.Millisecond,
	}
	if n.tweak != nil {
		n.tweak(&o)
	}
	return o
}

// start creates and runs the host; a test cleanup stops it.
func (n *node) start() *node {
	n.t.Helper()
	n.startWith(n.options())
	return n
}

func (n *node) startWith(o Options) {
	n.t.Helper()
	h, err := New(o)
	if err != nil {
		n.t.Fatal(err)
	}
	n.host = h
	if n.listen != "" {
		n.listen = h.Addr().String() // a restart binds the same port
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel, n.ran = cancel, make(chan error, 1)
	go func() { n.ran <- h.Run(ctx) }()
	n.t.Cleanup(n.stop)
	waitFor(n.t, 5*time.Second, n.name+" to run", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.ctx != nil
	})
}

// stop stops the host and waits, boundedly, for Run to return.
func (n *node) stop() {
	if n.cancel == nil {
		return
	}
	n.cancel()
	n.cancel = nil
	select {
	case <-n.ran:
	case <-time.After(10 * time.Second):
		n.t.Errorf("%s: Run did not return after cancel", n.name)
	}
	if n.t.Failed() {
		n.t.Logf("log of %s:\n%s", n.name, n.log)
	}
}

func (n *node) getPeers() []Peer {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.peers)
}

func (n *node) getArenas(p realize.PeerID) []realize.ArenaName {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.arenas[p])
}

// know adds other to n's household (with its address unless deaf).
func (n *node) know(other *node) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.peers = append(n.peers, Peer{ID: other.ident.ID(), Name: other.name, Address: other.listen})
}

func (n *node) forget(other *node) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.peers = slices.DeleteFunc(n.peers, func(p Peer) bool { return p.ID == other.ident.ID() })
}

func (n *node) share(other *node, arenas ...realize.ArenaName) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.arenas[other.ident.ID()] = arenas
}

func (n *node) counts() (ups, downs int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.ups), len(n.downs)
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// connected waits until a and b agree on one connection, and have for a
// while (a dial already under way may still replace a fresh connection),
// and returns a's end of it.
func connected(t *testing.T, a, b *node) *Conn {
	t.Helper()
	const settle = 150 * time.Millisecond
	var c *Conn
	var since time.Time
	waitFor(t, 10*time.Second, fmt.Sprintf("%s and %s to settle on a connection", a.name, b.name), func() bool {
		ab, ok1 := a.host.Conn(b.ident.ID())
		ba, ok2 := b.host.Conn(a.ident.ID())
		if !ok1 || !ok2 || !bytes.Equal(ab.tie, ba.tie) {
			c = nil
			return false
		}
		if ab != c {
			c, since = ab, time.Now()
		}
		return time.Since(since) >= settle
	})
	return c
}

// echo calls from a to b over a's current connection, retrying if that
// connection was replaced by a racing dial meanwhile.
func echo(t *testing.T, a, b *node, text string) {
	t.Helper()
	ctx := boundedCtx(t)
	for {
		c := connected(t, a, b)
		err := callEcho(ctx, c, text)
		if err == nil {
			return
		}
		if c.alive() || ctx.Err() != nil {
			t.Fatalf("%s→%s: %v", a.name, b.name, err)
		}
	}
}

// pair starts two listening nodes that know each other.
func pair(t *testing.T, tweak ...func(*Options)) (a, b *node) {
	a, b = newNode(t, "a", true), newNode(t, "b", true)
	for _, f := range tweak {
		a.tweak, b.tweak = f, f
	}
	// Addresses are known once bound, so bind both before introducing.
	a.start()
	b.start()
	a.know(b)
	b.know(a)
	for _, n := range []*node{a, b} {
		if err := n.host.Reconcile(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	return a, b
}

func callEcho(ctx context.Context, c *Conn, text string) error {
	var out echoMsg
	if err := c.Call(ctx, msgEcho, &echoMsg{Text: text}, &out); err != nil {
		return err
	}
	if out.Text != text {
		return fmt.Errorf("echo returned %q, want %q", out.Text, text)
	}
	return nil
}

func boundedCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}
