package household

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/realizefs/realize"
)

// RawThroughput measures how fast n bytes cross one QUIC stream between
// two endpoints on 127.0.0.1, with the transport's TLS and QUIC settings
// but none of its framing: the baseline a block-transfer benchmark is
// compared with. It returns bytes per second, timed from the first write
// to the receiver seeing the end of the stream.
func RawThroughput(ctx context.Context, n int64) (bytesPerSec float64, err error) {
	const op = "measure raw throughput"
	fail := func(err error) (float64, error) {
		return 0, &realize.Error{Op: op, Kind: realize.KindOf(err), Err: err}
	}
	if n <= 0 {
		return fail(fmt.Errorf("byte count %d", n))
	}
	server, client, err := rawEndpoints(ctx)
	if err != nil {
		return fail(err)
	}
	defer server.close()
	defer client.close()
	got := make(chan rawResult, 1)
	go func() { got <- server.receive(ctx) }()
	start := time.Now()
	if err := client.send(ctx, n); err != nil {
		return fail(err)
	}
	var r rawResult
	select {
	case r = <-got:
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	if r.err != nil {
		return fail(r.err)
	}
	if r.n != n {
		return fail(fmt.Errorf("received %d of %d bytes", r.n, n))
	}
	return float64(n) / r.at.Sub(start).Seconds(), nil
}

type rawResult struct {
	n   int64
	at  time.Time
	err error
}

// rawEnd is one endpoint: its socket, transport and connection.
type rawEnd struct {
	pc net.PacketConn
	tr *quic.Transport
	ln *quic.Listener
	qc *quic.Conn
}

func (e *rawEnd) close() {
	if e.qc != nil {
		_ = e.qc.CloseWithError(closeShutdown, "")
	}
	if e.ln != nil {
		e.ln.Close()
	}
	e.tr.Close()
	e.pc.Close()
}

// rawEndpoints makes two fresh identities pinned to each other and
// connects them.
func rawEndpoints(ctx context.Context) (server, client *rawEnd, err error) {
	opts := withDefaults(Options{})
	conf, ids, err := rawTLS(opts.Clock.Now())
	if err != nil {
		return nil, nil, err
	}
	qconf := quicConfig(opts)
	if server, err = rawBind(); err != nil {
		return nil, nil, err
	}
	if server.ln, err = server.tr.Listen(conf[0], qconf); err != nil {
		server.close()
		return nil, nil, err
	}
	if client, err = rawBind(); err != nil {
		server.close()
		return nil, nil, err
	}
	client.qc, err = client.tr.Dial(ctx, server.pc.LocalAddr(), conf[1], qconf)
	if err == nil && ids[0] == ids[1] {
		err = errors.New("identities collide")
	}
	if err != nil {
		client.close()
		server.close()
		return nil, nil, err
	}
	return server, client, nil
}

func rawBind() (*rawEnd, error) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return &rawEnd{pc: pc, tr: &quic.Transport{Conn: pc}}, nil
}

// rawTLS returns a server and a client config, each pinning the other.
func rawTLS(now time.Time) (conf [2]*tls.Config, ids [2]realize.PeerID, err error) {
	var certs [2]tls.Certificate
	for i := range 2 {
		id, err := NewIdentity(rand.Reader)
		if err != nil {
			return conf, ids, err
		}
		if certs[i], err = id.TLSCertificate(now); err != nil {
			return conf, ids, err
		}
		ids[i] = id.ID()
	}
	for i := range 2 {
		other := ids[1-i]
		conf[i] = &tls.Config{
			MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{certs[i]},
			NextProtos: []string{ALPN}, InsecureSkipVerify: true, SessionTicketsDisabled: true,
			ServerName: "realize", ClientAuth: tls.RequireAnyClientCert,
			VerifyConnection: func(cs tls.ConnectionState) error {
				id, err := peerOf(cs)
				if err == nil && id != other {
					err = errWrongPeer
				}
				return err
			},
		}
	}
	return conf, ids, nil
}

func (e *rawEnd) receive(ctx context.Context) rawResult {
	qc, err := e.ln.Accept(ctx)
	if err != nil {
		return rawResult{err: err}
	}
	defer qc.CloseWithError(closeShutdown, "")
	s, err := qc.AcceptStream(ctx)
	if err != nil {
		return rawResult{err: err}
	}
	n, err := io.Copy(io.Discard, s)
	return rawResult{n: n, at: time.Now(), err: err}
}

func (e *rawEnd) send(ctx context.Context, n int64) error {
	s, err := e.qc.OpenStreamSync(ctx)
	if err != nil {
		return err
	}
	defer context.AfterFunc(ctx, func() { s.CancelWrite(streamCanceled) })()
	buf := make([]byte, 1<<20)
	for left := n; left > 0; {
		chunk := buf[:min(int64(len(buf)), left)]
		if _, err := s.Write(chunk); err != nil {
			return err
		}
		left -= int64(len(chunk))
	}
	return s.Close()
}
