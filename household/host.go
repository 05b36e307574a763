package household

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/realizefs/realize"
)

// Peer is another peer of the household, as this peer's configuration
// describes it.
type Peer struct {
	ID      realize.PeerID
	Name    string
	Address string // UDP HOST:PORT to dial; "" = deaf: it dials us
}

// Options configure a Host. Identity and Peers are required.
type Options struct {
	Identity *Identity
	Name     string // this peer's name, told to others in Hello
	// Listen is the UDP address to accept connections on; "" makes this
	// peer deaf: it only dials, and its connections serve both ways.
	Listen string
	// LocalAddr is the UDP address a deaf peer dials from (default ":0").
	LocalAddr string
	// Peers returns the household as configured now. It is asked on every
	// handshake and redial, and by Reconcile, so configuration changes
	// apply without a restart.
	Peers func() []Peer
	// Arenas returns the arenas this peer shares with peer, asked on every
	// Hello and RequireArena.
	Arenas func(peer realize.PeerID) []realize.ArenaName
	// Mux routes requests; nil serves only the transport's own messages.
	Mux *Mux
	// OnConnect and OnDisconnect are called, one at a time and in order,
	// when a connection to a peer is ready (Hello exchanged both ways) and
	// when it is gone. They must not block for long.
	OnConnect    func(*Conn)
	OnDisconnect func(*Conn)

	Logger *slog.Logger  // default: discard
	Clock  realize.Clock // times shown in Status; default: the system clock
	Rand   io.Reader     // jitter; default: crypto/rand

	KeepAlive   time.Duration // default 10 s
	IdleTimeout time.Duration // a silent connection is dead after this; default 30 s
	BackoffMin  time.Duration // first redial delay; default 500 ms
	BackoffMax  time.Duration // redial delay cap; default 2 min
	MaxStreams  int64         // concurrent requests a peer may have open; default 64

	// revision, when set, is the protocol revision this peer claims
	// instead of ProtocolVersion (tests: an older peer).
	revision uint16
}

// Timing defaults.
const (
	DefaultKeepAlive   = 10 * time.Second
	DefaultIdleTimeout = 30 * time.Second
	DefaultBackoffMin  = 500 * time.Millisecond
	DefaultBackoffMax  = 2 * time.Minute
	DefaultMaxStreams  = 64
	// backoffReset is how long a connection must have lived for the next
	// redial to start again from BackoffMin.
	backoffReset     = 30 * time.Second
	handshakeTimeout = 10 * time.Second
	helloTimeout     = 10 * time.Second
	pingTimeout      = 3 * time.Second
)

// PeerStatus is what `realize status` shows about one peer.
type PeerStatus struct {
	ID         realize.PeerID
	Name       string
	Address    string // configured address; "" = deaf
	RemoteAddr string // of the connection, when connected
	Connected  bool
	Since      time.Time // connected since, or zero
	LastSeen   time.Time // now when connected; else when the last connection ended
	LastError  string    // why the last dial or connection failed
}

// Host is this peer's end of the household transport: it listens, dials,
// keeps one connection per peer and serves requests.
type Host struct {
	opts  Options
	id    realize.PeerID
	log   *slog.Logger
	clock realize.Clock
	codec *codec
	cert  tls.Certificate
	alpn  string
	qconf *quic.Config
	tr    *quic.Transport
	ln    *quic.Listener
	ev    *events

	randMu sync.Mutex

	mu       sync.Mutex
	started  bool
	closed   bool
	stopping bool            // no new connections or dialers from here on
	ctx      context.Context // Run's; nil before
	cancel   context.CancelFunc
	conns    map[realize.PeerID]*Conn
	status   map[realize.PeerID]*peerState
	dialers  map[realize.PeerID]*dialer
	wg       sync.WaitGroup
	done     chan struct{} // closed when Run has stopped everything
	shutOnce sync.Once
}

type peerState struct {
	lastSeen time.Time
	lastErr  string
}

// New binds the UDP socket (so Addr is known) and prepares the host; Run
// starts it.
func New(opts Options) (*Host, error) {
	const op = "start transport"
	if opts.Identity == nil || opts.Peers == nil {
		return nil, &realize.Error{Op: op, Kind: realize.Invalid, Err: errors.New("Identity and Peers are required")}
	}
	h := &Host{opts: withDefaults(opts), id: opts.Identity.ID(), codec: newCodec(), alpn: ALPN,
		conns: map[realize.PeerID]*Conn{}, status: map[realize.PeerID]*peerState{},
		dialers: map[realize.PeerID]*dialer{}, done: make(chan struct{})}
	h.log, h.clock = h.opts.Logger, h.opts.Clock
	h.ev = newEvents(h.opts.OnConnect, h.opts.OnDisconnect)
	cert, err := h.opts.Identity.TLSCertificate(h.clock.Now())
	if err != nil {
		return nil, err
	}
	h.cert = cert
	h.qconf = quicConfig(h.opts)
	if err := h.bind(); err != nil {
		return nil, &realize.Error{Op: op, Kind: realize.IO, Err: err}
	}
	return h, nil
}

func withDefaults(o Options) Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = realize.SystemClock{}
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.LocalAddr == "" {
		o.LocalAddr = ":0"
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.KeepAlive, DefaultKeepAlive)
	def(&o.IdleTimeout, DefaultIdleTimeout)
	def(&o.BackoffMin, DefaultBackoffMin)
	def(&o.BackoffMax, DefaultBackoffMax)
	if o.MaxStreams <= 0 {
		o.MaxStreams = DefaultMaxStreams
	}
	return o
}

// streamWindow is the initial receive window of a stream: room for a
// whole run of blocks (consensus asks for runs of 16, ~3 MiB on average).
const streamWindow = 8 << 20

// quicConfig is the QUIC side of the transport; o has its defaults.
func quicConfig(o Options) *quic.Config {
	return &quic.Config{
		HandshakeIdleTimeout:  handshakeTimeout,
		MaxIdleTimeout:        o.IdleTimeout,
		KeepAlivePeriod:       o.KeepAlive,
		MaxIncomingStreams:    o.MaxStreams,
		MaxIncomingUniStreams: -1, // the protocol has no use for them
		// Larger windows than quic-go's defaults (6/15 MB) keep a block
		// transfer from stalling on links with a long round trip.
		MaxStreamReceiveWindow:     16 << 20,
		MaxConnectionReceiveWindow: 64 << 20,
		// Every block run is a new stream, so a stream never lives long
		// enough for window auto-tuning to help: starting at quic-go's
		// 512 KiB, a run of a few MiB waited for window updates. A window
		// is a bound, not a buffer; the connection's still caps the total.
		InitialStreamReceiveWindow:     streamWindow,
		InitialConnectionReceiveWindow: 4 * streamWindow,
	}
}

// bind opens the UDP socket: one for both listening and dialling, so a
// peer is reached and reaches out from the same address.
func (h *Host) bind() error {
	addr := h.opts.Listen
	if addr == "" {
		addr = h.opts.LocalAddr
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return err
	}
	h.tr = &quic.Transport{Conn: pc, StatelessResetKey: h.opts.Identity.statelessResetKey()}
	if h.opts.Listen == "" {
		return nil
	}
	h.ln, err = h.tr.Listen(h.serverTLS(), h.qconf)
	if err != nil {
		h.tr.Close()
		pc.Close()
	}
	return err
}

// ID returns this peer's id.
func (h *Host) ID() realize.PeerID { return h.id }

// Addr returns the local UDP address (the listening one unless deaf).
func (h *Host) Addr() net.Addr { return h.tr.Conn.LocalAddr() }

// Run accepts and dials until ctx ends or Close is called, then closes
// every connection and the socket, and returns once all it started has
// stopped.
func (h *Host) Run(ctx context.Context) error {
	h.mu.Lock()
	if h.started || h.closed {
		h.mu.Unlock()
		return &realize.Error{Op: "run transport", Kind: realize.Invalid, Err: errors.New("already started or closed")}
	}
	h.started = true
	h.ctx, h.cancel = context.WithCancel(ctx)
	runCtx := h.ctx
	h.mu.Unlock()
	defer h.shutdown()
	h.ev.start()
	if h.ln != nil {
		h.wg.Go(func() { h.acceptLoop(runCtx) })
	}
	h.reconcile(runCtx)
	<-runCtx.Done()
	return nil
}

// Close stops the host (as ending Run's context does) and waits for it.
func (h *Host) Close() error {
	h.mu.Lock()
	h.closed = true
	started, cancel := h.started, h.cancel
	h.mu.Unlock()
	if !started {
		h.shutdown()
		return nil
	}
	cancel()
	<-h.done
	return nil
}

// shutdown closes connections, listener and socket, and waits for every
// goroutine of the host.
func (h *Host) shutdown() {
	h.shutOnce.Do(func() {
		h.mu.Lock()
		h.stopping = true
		if h.cancel != nil {
			h.cancel()
		}
		conns := make([]*Conn, 0, len(h.conns))
		for _, c := range h.conns {
			conns = append(conns, c)
		}
		h.mu.Unlock()
		if h.ln != nil {
			h.ln.Close()
		}
		for _, c := range conns {
			c.close(closeShutdown, "shutting down")
		}
		h.wg.Wait() // connections that were still setting up close on ctx
		h.tr.Close()
		h.tr.Conn.Close()
		h.ev.stop()
		close(h.done)
	})
}

// Conn returns the connection to peer, if there is one.
func (h *Host) Conn(peer realize.PeerID) (*Conn, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c, ok := h.conns[peer]
	return c, ok
}

// Status returns the state of every configured peer, in configuration
// order.
func (h *Host) Status() []PeerStatus {
	peers := h.opts.Peers()
	now := h.clock.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]PeerStatus, 0, len(peers))
	for _, p := range peers {
		s := PeerStatus{ID: p.ID, Name: p.Name, Address: p.Address}
		if st := h.status[p.ID]; st != nil {
			s.LastSeen, s.LastError = st.lastSeen, st.lastErr
		}
		if c := h.conns[p.ID]; c != nil {
			s.Connected, s.Since, s.LastSeen = true, c.since, now
			s.RemoteAddr = c.qc.RemoteAddr().String()
		}
		out = append(out, s)
	}
	return out
}

// lookup finds peer id in the configuration as it is now.
func (h *Host) lookup(id realize.PeerID) (Peer, bool) {
	peers := h.opts.Peers()
	i := slices.IndexFunc(peers, func(p Peer) bool { return p.ID == id })
	if i < 0 {
		return Peer{}, false
	}
	return peers[i], true
}

func (h *Host) route(t MsgType) (route, bool) {
	switch t {
	case MsgHello:
		return route{max: DefaultFrameSize, handler: h.serveHello}, true
	case MsgPing:
		return route{max: MinFrameSize, handler: servePing}, true
	}
	return h.opts.Mux.route(t)
}

// maxRequest bounds a request frame before its type is known.
func (h *Host) maxRequest() int { return max(DefaultFrameSize, h.opts.Mux.maxFrame()) }

func (h *Host) noteError(peer realize.PeerID, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.state(peer).lastErr = err.Error()
}

// state returns peer's record; h.mu must be held.
func (h *Host) state(peer realize.PeerID) *peerState {
	st := h.status[peer]
	if st == nil {
		st = &peerState{}
		h.status[peer] = st
	}
	return st
}
