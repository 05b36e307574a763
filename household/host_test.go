package household

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/realizefs/realize"
)

func TestTwoHostsCallAndStream(t *testing.T) {
	a, b := pair(t)
	ctx := boundedCtx(t)
	ab, ba := connected(t, a, b), connected(t, b, a)
	for _, c := range []*Conn{ab, ba} {
		if err := callEcho(ctx, c, "hello from "+c.host.opts.Name); err != nil {
			t.Fatal(err)
		}
		r, err := c.Stream(ctx, msgCount, &echoMsg{Text: "n", N: 5})
		if err != nil {
			t.Fatal(err)
		}
		var got []int
		for {
			var m echoMsg
			err := r.Next(&m)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, m.N)
		}
		r.Close()
		if fmt.Sprint(got) != "[0 1 2 3 4]" {
			t.Errorf("stream gave %v", got)
		}
	}
	if ab.PeerName() != "b" || ba.PeerName() != "a" || ab.Version() != ProtocolVersion {
		t.Errorf("hello: names %q %q, version %d", ab.PeerName(), ba.PeerName(), ab.Version())
	}
}

func TestThreeHosts(t *testing.T) {
	a, b, c := newNode(t, "a", true), newNode(t, "b", true), newNode(t, "c", false)
	nodes := []*node{a, b, c}
	for _, n := range nodes {
		n.start()
	}
	for _, n := range nodes {
		for _, m := range nodes {
			if n != m {
				n.know(m)
			}
		}
	}
	for _, n := range nodes {
		if err := n.host.Reconcile(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range nodes {
		for _, m := range nodes {
			if n == m {
				continue
			}
			echo(t, n, m, n.name+"→"+m.name)
		}
	}
	for _, n := range nodes {
		st := n.host.Status()
		if len(st) != 2 || !st[0].Connected || !st[1].Connected || st[0].RemoteAddr == "" || st[0].Since.IsZero() {
			t.Errorf("%s status: %+v", n.name, st)
		}
	}
}

func TestUnknownKeyRefused(t *testing.T) {
	t.Run("stranger dials host", func(t *testing.T) {
		host, stranger := newNode(t, "host", true), newNode(t, "stranger", true)
		host.start()
		stranger.start()
		stranger.know(host) // the host does not know the stranger
		if err := stranger.host.Reconcile(t.Context()); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("refused unknown peer\" key=%s remote=127.0.0.1:", stranger.ident.ID().Short())
		waitFor(t, 10*time.Second, "the host to log the refusal", func() bool {
			return strings.Contains(host.log.String(), want)
		})
		waitFor(t, 10*time.Second, "the stranger to record the failure", func() bool {
			st := stranger.host.Status()
			return st[0].LastError != "" && strings.Contains(st[0].LastError, "refused our key")
		})
		if _, ok := stranger.host.Conn(host.ident.ID()); ok {
			t.Error("stranger connected")
		}
		if ups, _ := host.counts(); ups != 0 {
			t.Errorf("host saw %d connections", ups)
		}
	})
	t.Run("host dials a stranger", func(t *testing.T) {
		host, stranger, real := newNode(t, "host", true), newNode(t, "stranger", true), newNode(t, "b", false)
		host.start()
		stranger.start()
		stranger.know(host) // it would accept the host; the host must refuse it
		// The host expects peer b at the stranger's address.
		host.mu.Lock()
		host.peers = []Peer{{ID: real.ident.ID(), Name: "b", Address: stranger.listen}}
		host.mu.Unlock()
		if err := host.host.Reconcile(t.Context()); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("refused unknown peer\" key=%s remote=%s want=%s", stranger.ident.ID().Short(),
			stranger.listen, real.ident.ID().Short())
		waitFor(t, 10*time.Second, "the host to log the refusal", func() bool {
			return strings.Contains(host.log.String(), want)
		})
		waitFor(t, 10*time.Second, "a Permission error in status", func() bool {
			return strings.Contains(host.host.Status()[0].LastError, "not the one of the peer dialled")
		})
		if ups, _ := stranger.counts(); ups != 0 {
			t.Errorf("stranger saw %d connections", ups)
		}
	})
}

func TestDialErrorKinds(t *testing.T) {
	host, stranger := newNode(t, "host", true), newNode(t, "stranger", true)
	host.start()
	stranger.start()
	ctx := boundedCtx(t)
	// The stranger is refused by the host: Permission on the stranger's side.
	err := stranger.host.dial(ctx, Peer{ID: host.ident.ID(), Address: host.listen})
	if realize.KindOf(err) != realize.Permission {
		t.Errorf("refused by the server: %v (kind %v), want Permission", err, realize.KindOf(err))
	}
	// The host refuses the key it finds: Permission too, saying so.
	err = host.host.dial(ctx, Peer{ID: host.ident.ID(), Address: stranger.listen})
	if realize.KindOf(err) != realize.Permission || !errors.Is(err, errWrongPeer) {
		t.Errorf("refused by the client: %v, want Permission wrapping errWrongPeer", err)
	}
}

func TestALPNMismatchRefused(t *testing.T) {
	a, b := newNode(t, "a", false), newNode(t, "b", true)
	b.start()
	a.know(b)
	b.know(a)
	// a speaks a future version.
	h, err := New(a.options())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	h.alpn = "realize/2"
	err = h.dial(boundedCtx(t), Peer{ID: b.ident.ID(), Name: "b", Address: b.listen})
	t.Log(err)
	if realize.KindOf(err) != realize.Unsupported || !errors.Is(err, errALPN) {
		t.Fatalf("dial with another ALPN: %v (kind %v), want Unsupported wrapping errALPN", err, realize.KindOf(err))
	}
	waitFor(t, 5*time.Second, "b to log the mismatch", func() bool {
		return strings.Contains(b.log.String(), `refused protocol version" remote=127.0.0.1:`) &&
			strings.Contains(b.log.String(), "offered=[realize/2] want=realize/1")
	})
	if ups, _ := b.counts(); ups != 0 {
		t.Errorf("b saw %d connections", ups)
	}
}

func TestSimultaneousDialKeepsOne(t *testing.T) {
	a, b := pair(t)
	ctx := boundedCtx(t)
	connected(t, a, b)
	connected(t, b, a)
	lo := min(a.ident.ID().String(), b.ident.ID().String())
	for round := range 3 {
		// Both sides dial while connected, at once: two more connections,
		// one from each side, race the one there is.
		pa, _ := b.host.lookup(a.ident.ID())
		pb, _ := a.host.lookup(b.ident.ID())
		errs := make(chan error, 2)
		go func() { errs <- a.host.dial(ctx, pb) }()
		go func() { errs <- b.host.dial(ctx, pa) }()
		for range 2 {
			if err := <-errs; err != nil {
				t.Logf("round %d: dial: %v", round, err) // a dial may lose before its Hello
			}
		}
		waitFor(t, 10*time.Second, "one shared connection, dialled by the smaller id", func() bool {
			ab, ok1 := a.host.Conn(b.ident.ID())
			ba, ok2 := b.host.Conn(a.ident.ID())
			return ok1 && ok2 && bytes.Equal(ab.tie, ba.tie) && ab.alive() && ba.alive() && ab.dialer.String() == lo
		})
		ab, _ := a.host.Conn(b.ident.ID())
		if err := callEcho(ctx, ab, "after the race"); err != nil {
			t.Fatal(err)
		}
	}
	// The losing connections are closed, not left open.
	a.host.mu.Lock()
	n := len(a.host.conns)
	a.host.mu.Unlock()
	if n != 1 {
		t.Errorf("a holds %d connections", n)
	}
	ups, downs := a.counts()
	if ups-downs != 1 {
		t.Errorf("a: %d connects, %d disconnects: want exactly one open", ups, downs)
	}
}

func TestDeafPeerServesBothWays(t *testing.T) {
	deaf, listener := newNode(t, "deaf", false), newNode(t, "listener", true)
	listener.start()
	deaf.know(listener)
	listener.know(deaf) // no address: it only waits to be dialled
	deaf.start()
	if deaf.host.ln != nil {
		t.Fatal("deaf host listens")
	}
	ctx := boundedCtx(t)
	dl, ld := connected(t, deaf, listener), connected(t, listener, deaf)
	if err := callEcho(ctx, ld, "listener opens a stream back"); err != nil {
		t.Fatal(err)
	}
	if err := callEcho(ctx, dl, "deaf calls"); err != nil {
		t.Fatal(err)
	}
	listener.host.mu.Lock()
	dialers := len(listener.host.dialers)
	listener.host.mu.Unlock()
	if dialers != 0 {
		t.Errorf("listener runs %d dialers for a deaf peer", dialers)
	}
}

func TestReconcileDisconnectsRemovedPeer(t *testing.T) {
	a, b := pair(t)
	connected(t, a, b)
	connected(t, b, a)
	_, downsBefore := a.counts()
	a.forget(b)
	if err := a.host.Reconcile(boundedCtx(t)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "both sides to drop the connection", func() bool {
		_, ok1 := a.host.Conn(b.ident.ID())
		_, ok2 := b.host.Conn(a.ident.ID())
		return !ok1 && !ok2
	})
	// b keeps dialling and a keeps refusing it.
	want := fmt.Sprintf("refused unknown peer\" key=%s", b.ident.ID().Short())
	waitFor(t, 10*time.Second, "a to refuse b's redial", func() bool {
		return strings.Contains(a.log.String(), want)
	})
	if _, ok := a.host.Conn(b.ident.ID()); ok {
		t.Error("a reconnected to a removed peer")
	}
	if _, downs := a.counts(); downs != downsBefore+1 {
		t.Errorf("a saw %d disconnects, want %d", downs, downsBefore+1)
	}
	a.host.mu.Lock()
	dialers := len(a.host.dialers)
	a.host.mu.Unlock()
	if dialers != 0 {
		t.Errorf("a still runs %d dialers", dialers)
	}
}

func TestReconnectAfterRestart(t *testing.T) {
	for _, abrupt := range []bool{false, true} {
		t.Run(fmt.Sprintf("abrupt=%v", abrupt), func(t *testing.T) {
			a, b := pair(t)
			ctx := boundedCtx(t)
			first := connected(t, a, b)
			if err := callEcho(ctx, first, "before"); err != nil {
				t.Fatal(err)
			}
			if abrupt {
				// A crash: no CONNECTION_CLOSE reaches a.
				b.host.tr.Conn.Close()
			}
			b.stop()
			b.startWith(b.options()) // same identity, same port
			// Well within the idle timeout (5 s here), and faster than
			// the ping that checks an old connection (3 s): a clean close
			// says so, and after a crash the new process answers a's next
			// packet with a stateless reset (same key, derived from the
			// identity).
			start := time.Now()
			waitFor(t, 2*time.Second, "a new connection", func() bool {
				c, ok := a.host.Conn(b.ident.ID())
				return ok && c != first
			})
			t.Logf("reconnected in %v", time.Since(start).Round(time.Millisecond))
			echo(t, a, b, "after")
			if ups, downs := a.counts(); ups < 2 || downs < 1 {
				t.Errorf("a: %d connects, %d disconnects", ups, downs)
			}
		})
	}
}

func TestDeadConnectionDetected(t *testing.T) {
	// b vanishes without a word (its socket closes, no CONNECTION_CLOSE):
	// a must notice through keep-alives and the idle timeout, not hang.
	a, b := pair(t, func(o *Options) { o.IdleTimeout = time.Second; o.KeepAlive = 200 * time.Millisecond })
	o := a.options()
	connected(t, a, b)
	b.host.tr.Conn.Close() // abrupt: like a network change or a crash
	waitFor(t, 3*o.IdleTimeout, "a to detect the dead connection", func() bool {
		_, ok := a.host.Conn(b.ident.ID())
		return !ok
	})
	if st := a.host.Status()[0]; st.Connected || st.LastSeen.IsZero() {
		t.Errorf("status after loss: %+v", st)
	}
}

func TestArenaPermission(t *testing.T) {
	a, b := pair(t)
	a.share(b, "docs", "photos")
	b.share(a, "photos", "music")
	ctx := boundedCtx(t)
	ba := connected(t, b, a)
	connected(t, a, b)
	// Both sides said Hello before the shares were set: resend.
	for _, n := range []*node{a, b} {
		if err := n.host.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
	}
	ab, _ := a.host.Conn(b.ident.ID())
	waitFor(t, 5*time.Second, "hellos with arenas", func() bool {
		return fmt.Sprint(ab.SharedArenas()) == "[photos]" && fmt.Sprint(ba.SharedArenas()) == "[photos]"
	})
	tests := []struct {
		arena realize.ArenaName
		ok    bool
	}{
		{"photos", true},
		{"docs", false},  // a shares it, b does not
		{"music", false}, // b shares it, a does not
		{"nope", false},  // nobody does
	}
	for _, tt := range tests {
		t.Run(string(tt.arena), func(t *testing.T) {
			r, err := ba.Stream(ctx, msgArena, &arenaReq{Arena: tt.arena})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			var got []string
			var end error
			for end == nil {
				var m echoMsg
				if end = r.Next(&m); end == nil {
					got = append(got, m.Text)
				}
			}
			if tt.ok {
				if !errors.Is(end, io.EOF) || len(got) != 1 {
					t.Fatalf("got %q, %v", got, end)
				}
				return
			}
			var re *RemoteError
			if realize.KindOf(end) != realize.Permission || !errors.As(end, &re) || re.Code != 4 {
				t.Fatalf("got %v (kind %v), want a Permission error with code 4", end, realize.KindOf(end))
			}
			if len(got) != 0 {
				t.Fatalf("received data of a not shared arena: %q", got)
			}
		})
	}
	// a stops sharing photos: refused from the next request on, without
	// a reconnect or even a new Hello.
	a.share(b, "docs")
	if err := ba.Call(ctx, msgArena, &arenaReq{Arena: "photos"}, &echoMsg{}); realize.KindOf(err) != realize.Permission {
		t.Errorf("after unsharing: %v", err)
	}
	if err := a.host.RequireArena(b.ident.ID(), "photos"); realize.KindOf(err) != realize.Permission {
		t.Errorf("Host.RequireArena: %v", err)
	}
	if err := a.host.RequireArena(realize.PeerID{1}, "docs"); realize.KindOf(err) != realize.Permission {
		t.Errorf("Host.RequireArena of an unconnected peer: %v", err)
	}
}

func TestCallErrors(t *testing.T) {
	a, b := pair(t)
	ctx := boundedCtx(t)
	ab := connected(t, a, b)
	t.Run("kinds cross the wire", func(t *testing.T) {
		for _, kind := range []realize.ErrKind{realize.NotExist, realize.Corrupt, realize.Busy, realize.Changed} {
			err := ab.Call(ctx, msgFail, &echoMsg{Text: "why", N: int(kind)}, nil)
			var re *RemoteError
			if realize.KindOf(err) != kind || !errors.As(err, &re) || !strings.Contains(re.Message, "why") {
				t.Errorf("kind %v: got %v", kind, err)
			}
			var e *realize.Error
			if !errors.As(err, &e) || e.Peer != b.ident.ID() {
				t.Errorf("error does not name the peer: %#v", e)
			}
		}
	})
	t.Run("not served", func(t *testing.T) {
		err := ab.Call(ctx, msgClient, nil, nil)
		var re *RemoteError
		if realize.KindOf(err) != realize.Unsupported || !errors.As(err, &re) || re.Code != CodeUnknownType {
			t.Errorf("got %v", err)
		}
		if err := ab.Call(ctx, 0x7777, nil, nil); realize.KindOf(err) != realize.Unsupported {
			t.Errorf("unregistered type: %v", err)
		}
	})
	t.Run("bad request body", func(t *testing.T) {
		err := ab.Call(ctx, msgEcho, map[int]string{9: "unknown field"}, &echoMsg{})
		if realize.KindOf(err) != realize.Invalid {
			t.Errorf("got %v", err)
		}
	})
	t.Run("request over the limit", func(t *testing.T) {
		err := ab.Call(ctx, msgEcho, &echoMsg{Text: strings.Repeat("x", DefaultFrameSize)}, &echoMsg{})
		if realize.KindOf(err) != realize.Invalid {
			t.Errorf("got %v", err)
		}
	})
	t.Run("response over the limit", func(t *testing.T) {
		err := ab.Call(ctx, msgBig, nil, &echoMsg{})
		if realize.KindOf(err) != realize.Invalid || !strings.Contains(err.Error(), "exceeds the limit") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("handler panics", func(t *testing.T) {
		if err := ab.Call(ctx, msgPanic, nil, nil); realize.KindOf(err) != realize.Other || err == nil {
			t.Errorf("got %v", err)
		}
		if !strings.Contains(b.log.String(), "handler panicked") {
			t.Error("panic not logged")
		}
	})
	t.Run("caller gives up", func(t *testing.T) {
		cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		var m echoMsg
		start := time.Now()
		err := ab.Call(cctx, msgSlow, nil, &m)
		if realize.KindOf(err) != realize.Canceled && realize.KindOf(err) != realize.Invalid {
			t.Errorf("got %v (kind %v)", err, realize.KindOf(err))
		}
		r, err := ab.Stream(cctx, msgSlow, nil)
		if err == nil {
			_ = r.Next(&m)
			err = r.Next(&m)
			r.Close()
		}
		if realize.KindOf(err) != realize.Canceled {
			t.Errorf("stream: got %v (kind %v), want Canceled", err, realize.KindOf(err))
		}
		if time.Since(start) > 5*time.Second {
			t.Error("cancel took too long")
		}
	})
	if err := callEcho(ctx, ab, "still works"); err != nil {
		t.Fatal(err)
	}
}

func TestMalformedFramesCloseOnlyTheirStream(t *testing.T) {
	a, b := pair(t)
	ctx := boundedCtx(t)
	ab := connected(t, a, b)
	header := func(t MsgType, body []byte) []byte {
		f, err := a.host.codec.marshal(requestHeader{Type: t, Body: body})
		if err != nil {
			panic(err)
		}
		return f
	}
	echo, _ := a.host.codec.marshal(echoMsg{Text: "x"})
	blob, _ := a.host.codec.marshal(bytes.Repeat([]byte{0}, 2*MinFrameSize))
	frame := func(b []byte) []byte {
		var buf bytes.Buffer
		_ = writeFrame(&buf, b)
		return buf.Bytes()
	}
	tests := []struct {
		name string
		raw  []byte
		code ErrCode
	}{
		{"oversized length", []byte{0xff, 0xff, 0xff, 0xff, 0x7f}, CodeTooLarge},
		{"over the type's limit", frame(header(MsgPing, blob)), CodeTooLarge},
		{"empty frame", []byte{0}, CodeMalformed},
		{"non-minimal length", []byte{0x81, 0x00}, CodeMalformed},
		{"truncated", []byte{10, 0xa1}, CodeMalformed},
		{"not CBOR", frame([]byte{0xff, 0xff}), CodeMalformed},
		{"indefinite length", frame([]byte{0xbf, 0x01, 0x10, 0xff}), CodeMalformed},
		{"duplicate key", frame([]byte{0xa2, 0x01, 0x10, 0x01, 0x10}), CodeMalformed},
		{"unknown header field", frame([]byte{0xa2, 0x01, 0x10, 0x09, 0x00}), CodeMalformed},
		{"unknown type", frame(header(0x4242, nil)), CodeUnknownType},
		{"data after the request", append(frame(header(msgEcho, echo)), 1, 2), CodeMalformed},
		{"tag", frame([]byte{0xc1, 0xa1, 0x01, 0x10}), CodeMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ab.qc.OpenStreamSync(ctx)
			if err != nil {
				t.Fatal(err)
			}
			_ = s.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := s.Write(tt.raw); err != nil {
				t.Fatal(err)
			}
			s.Close()
			r := &Reader{conn: ab, s: s, br: bufio.NewReaderSize(s, readBufSize), max: DefaultFrameSize, op: "raw", ctx: ctx, stop: func() bool { return true }}
			err = r.Next(nil)
			var re *RemoteError
			if !errors.As(err, &re) || re.Code != tt.code {
				t.Fatalf("got %v, want an error frame with code %v", err, tt.code)
			}
			r.Close()
			if err := callEcho(ctx, ab, "next call"); err != nil {
				t.Fatalf("connection broken after %s: %v", tt.name, err)
			}
		})
	}
	if !ab.alive() {
		t.Fatal("connection closed")
	}
}

func TestStreamsAreBoundedAndReleased(t *testing.T) {
	const limit = 3
	a, b := pair(t, func(o *Options) { o.MaxStreams = limit })
	ctx := boundedCtx(t)
	ab := connected(t, a, b)
	// Far more calls than the limit, one after another: every finished
	// stream gives its slot back.
	for i := range 20 * limit {
		if err := callEcho(ctx, ab, fmt.Sprint(i)); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	// limit requests in progress hold every slot: one more waits.
	var open []*Reader
	for range limit {
		r, err := ab.Stream(ctx, msgSlow, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Next(&echoMsg{}); err != nil { // the handler is running
			t.Fatal(err)
		}
		open = append(open, r)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := callEcho(short, ab, "one too many"); realize.KindOf(err) != realize.Canceled {
		t.Errorf("call over the limit: %v, want it to wait until canceled", err)
	}
	open[0].Close() // frees a slot (the server's handler sees ctx end)
	if err := callEcho(ctx, ab, "fits again"); err != nil {
		t.Errorf("after freeing a slot: %v", err)
	}
	for _, r := range open[1:] {
		r.Close()
	}
}

func TestCloseWithoutRun(t *testing.T) {
	n := newNode(t, "idle", true)
	h, err := New(n.options())
	if err != nil {
		t.Fatal(err)
	}
	addr := h.Addr().String()
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.Run(t.Context()); err == nil {
		t.Error("Run after Close succeeded")
	}
	// The port is free again.
	n.listen = addr
	h2, err := New(n.options())
	if err != nil {
		t.Fatalf("port not released: %v", err)
	}
	h2.Close()
	if err := h.Reconcile(t.Context()); realize.KindOf(err) != realize.Unavailable {
		t.Errorf("Reconcile on a closed host: %v", err)
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Options{}); realize.KindOf(err) != realize.Invalid {
		t.Errorf("New without identity: %v", err)
	}
	n := newNode(t, "x", true)
	o := n.options()
	o.Listen = "256.0.0.1:1"
	if _, err := New(o); err == nil {
		t.Error("bad listen address accepted")
	}
}
