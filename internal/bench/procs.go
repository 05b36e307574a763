package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// The sync benchmark drives real daemons through the CLI, as a user (and
// the e2e tests) would: that way it measures the binary people run, with
// its own process, scheduler and GC, not an in-process shortcut.

// buildRealize builds the realize binary once into a fresh directory.
func buildRealize(ctx context.Context, o Options) (string, error) {
	dir, err := freshDir(o, "bin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "realize")
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/realizefs/realize/cmd/realize").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("building realize: %v\n%s", err, out)
	}
	return bin, nil
}

// freeAddr returns a 127.0.0.1 address nothing listens on right now (on
// network "udp" or "tcp"). Another process could take it before we do;
// on loopback in a bench run that is unlikely enough.
func freeAddr(network string) (string, error) {
	if network == "tcp" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		defer l.Close()
		return l.Addr().String(), nil
	}
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer c.Close()
	return c.LocalAddr().String(), nil
}

// waitUntil polls cond every period until it is true, it fails, ctx ends
// or limit passes: every wait in the benchmark is bounded.
func waitUntil(ctx context.Context, limit, period time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s", limit, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// daemonPeer is one realize installation in its own fresh directories.
type daemonPeer struct {
	bin, name, id string
	base, config  string
	arena, listen string
	nfs           string // NFS server address, "" = none
	cmd           *exec.Cmd
	exited        chan struct{}
}

// newDaemonPeer runs `realize init` for a peer under base, listening on
// a free UDP port, with its arena pinned (a full replica) and without an
// NFS server (two would collide on the default NFS port).
func newDaemonPeer(ctx context.Context, bin, base, name string) (*daemonPeer, error) {
	return newDaemonPeerWith(ctx, bin, base, name, "", true)
}

// newDaemonPeerWith is newDaemonPeer with an NFS address ("" = none) and
// the arena's default mark.
func newDaemonPeerWith(ctx context.Context, bin, base, name, nfsAddr string, pin bool) (*daemonPeer, error) {
	return newDaemonPeerAt(ctx, bin, base, name, filepath.Join(base, "home"), nfsAddr, pin)
}

// newDaemonPeerAt is newDaemonPeerWith with the arena's directory.
func newDaemonPeerAt(ctx context.Context, bin, base, name, arena, nfsAddr string, pin bool) (*daemonPeer, error) {
	listen, err := freeAddr("udp")
	if err != nil {
		return nil, err
	}
	p := &daemonPeer{bin: bin, name: name, base: base, listen: listen, nfs: nfsAddr,
		config: filepath.Join(base, "config.toml"), arena: arena}
	args := []string{"init", "--name", name, "--data", filepath.Join(base, "data"),
		"--arena", "home=" + p.arena, "--listen", listen, "--nfs=" + nfsAddr}
	if pin {
		args = append(args, "--pin")
	}
	if _, err := p.cli(ctx, args...); err != nil {
		return nil, err
	}
	out, err := p.cli(ctx, "id")
	p.id = strings.TrimSpace(out)
	return p, err
}

// cli runs one realize command against this peer's config.
func (p *daemonPeer) cli(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.bin, append([]string{"--config", p.config}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s: realize %s: %v: %s", p.name, strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

// start runs the daemon, its output going to a file beside its config.
func (p *daemonPeer) start() error {
	logf, err := os.Create(filepath.Join(p.base, "daemon.log"))
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command(p.bin, "--config", p.config, "daemon")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return err
	}
	p.cmd, p.exited = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(p.exited) }()
	return nil
}

// stop ends the daemon by its PID: SIGTERM, then SIGKILL if it lingers.
func (p *daemonPeer) stop() {
	if p == nil || p.cmd == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
	p.cmd = nil
}

// logTail is the end of the daemon's log, for error messages.
func (p *daemonPeer) logTail() string {
	b, _ := os.ReadFile(filepath.Join(p.base, "daemon.log"))
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// peerStatus is the part of `realize status --json` the benchmark reads.
type peerStatus struct {
	Arenas []struct {
		Files       int64     `json:"files"`
		PendingHash int64     `json:"pending_hash"`
		LastScan    time.Time `json:"last_scan"`
		Scanning    bool      `json:"scanning"`
		Received    int64     `json:"received_bytes"`
	} `json:"arenas"`
	Peers []struct {
		Connected bool   `json:"connected"`
		Lag       uint64 `json:"lag"`
	} `json:"peers"`
}

func (p *daemonPeer) status(ctx context.Context) (peerStatus, error) {
	var s peerStatus
	out, err := p.cli(ctx, "status", "--json")
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		return s, fmt.Errorf("%s: status --json: %v", p.name, err)
	}
	if len(s.Arenas) != 1 {
		return s, fmt.Errorf("%s: status shows %d arenas, want 1", p.name, len(s.Arenas))
	}
	return s, nil
}

// idle reports whether the daemon has indexed everything it has seen,
// is connected to its one peer and has all of that peer's history.
func (s peerStatus) idle() bool {
	a := s.Arenas[0]
	return !a.LastScan.IsZero() && !a.Scanning && a.PendingHash == 0 &&
		len(s.Peers) == 1 && s.Peers[0].Connected && s.Peers[0].Lag == 0
}

// waitIdle waits until p is idle, so that one measurement does not pay
// for the tail of the previous one.
func (p *daemonPeer) waitIdle(ctx context.Context, limit time.Duration) error {
	err := waitUntil(ctx, limit, 100*time.Millisecond, p.name+" idle", func() (bool, error) {
		s, err := p.status(ctx)
		if err != nil {
			return false, nil // not answering yet
		}
		return s.idle(), nil
	})
	if err != nil {
		return fmt.Errorf("%w\n%s daemon log:\n%s", err, p.name, p.logTail())
	}
	return nil
}

// startPair makes two fresh peers under dir that know each other, starts
// both daemons and waits until they are connected and idle. The caller
// stops them (also on error: stop is safe on a peer never started).
func startPair(ctx context.Context, bin, dir string) (a, b *daemonPeer, err error) {
	if a, err = newDaemonPeer(ctx, bin, filepath.Join(dir, "a"), "alpha"); err != nil {
		return nil, nil, err
	}
	if b, err = newDaemonPeer(ctx, bin, filepath.Join(dir, "b"), "bravo"); err != nil {
		return nil, nil, err
	}
	for _, pq := range [][2]*daemonPeer{{a, b}, {b, a}} {
		if _, err := pq[0].cli(ctx, "peer", "add", pq[1].name, pq[1].id, pq[1].listen); err != nil {
			return a, b, err
		}
	}
	for _, p := range []*daemonPeer{a, b} {
		if err := p.start(); err != nil {
			return a, b, err
		}
	}
	for _, p := range []*daemonPeer{a, b} {
		if err := p.waitIdle(ctx, 30*time.Second); err != nil {
			return a, b, err
		}
	}
	return a, b, nil
}

// rsyncd is an rsync daemon on loopback with one writable module, the
// baseline for transfers: rsync's own protocol over TCP, no ssh.
type rsyncd struct {
	url    string // rsync://127.0.0.1:PORT/mod
	cmd    *exec.Cmd
	exited chan struct{}
}

// startRsyncd starts the daemon over a fresh module directory. It
// returns nil and no error if rsync is not installed.
func startRsyncd(ctx context.Context, o Options) (*rsyncd, error) {
	if _, err := exec.LookPath("rsync"); err != nil {
		return nil, nil
	}
	dir, err := freshDir(o, "rsyncd")
	if err != nil {
		return nil, err
	}
	mod := filepath.Join(dir, "mod")
	addr, err := freeAddr("tcp")
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	conf := fmt.Sprintf("use chroot = false\nlog file = %s\n\n[mod]\npath = %s\nread only = false\nuid = %d\ngid = %d\n",
		filepath.Join(dir, "rsyncd.log"), mod, os.Getuid(), os.Getgid())
	confPath := filepath.Join(dir, "rsyncd.conf")
	if err := os.Mkdir(mod, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command("rsync", "--daemon", "--no-detach", "--config="+confPath, "--port="+port, "--address=127.0.0.1")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	r := &rsyncd{url: "rsync://" + addr + "/mod", cmd: cmd, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(r.exited) }()
	err = waitUntil(ctx, 10*time.Second, 20*time.Millisecond, "rsync daemon", func() (bool, error) {
		select {
		case <-r.exited:
			return false, errors.New("rsync daemon exited")
		default:
		}
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil, nil
	})
	if err != nil {
		r.stop()
		return nil, err
	}
	return r, nil
}

// push copies src (a file, or a directory's contents if it ends in "/")
// into a new directory sub of the module and returns the seconds it took.
// --fsync because the daemons fsync every file they place: both then
// finish with the data on disk. --whole-file: there is no basis anyway.
func (r *rsyncd) push(ctx context.Context, src, sub string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "rsync", "-a", "--whole-file", "--fsync", src, r.url+"/"+sub+"/")
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("rsync %s: %v\n%s", src, err, out)
	}
	return time.Since(start).Seconds(), nil
}

// stop ends the daemon by its PID and waits for it: SIGTERM first, so
// that it reaps its per-connection children rather than leaving them to
// init, then SIGKILL if it lingers.
func (r *rsyncd) stop() {
	if r == nil {
		return
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(10 * time.Second):
		r.cmd.Process.Kill()
		<-r.exited
	}
}
