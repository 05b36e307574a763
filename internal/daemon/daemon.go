// Package daemon wires Realize together: it is the one package that knows
// every concrete part (store, identity, indexer, history, transport, NFS)
// and the order in which they start and stop. Everything else gets what it
// needs injected; cmd/realize only parses flags and calls Run.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/history"
	"github.com/realizefs/realize/household"
	"github.com/realizefs/realize/internal/config"
	"github.com/realizefs/realize/internal/control"
	"github.com/realizefs/realize/internal/store"
	"github.com/realizefs/realize/nfs"
	"github.com/realizefs/realize/unreal"
)

// PIDFile is the file in the data directory that holds the running
// daemon's process id (for people and service managers; the database lock,
// not this file, is what keeps a second daemon out).
const PIDFile = "daemon.pid"

// DefaultShutdownTimeout bounds a clean shutdown.
const DefaultShutdownTimeout = 10 * time.Second

// Options tune Run. The zero value is ready for production.
type Options struct {
	Version         string        // shown by `realize status`
	Clock           realize.Clock // nil = the system clock
	ShutdownTimeout time.Duration // 0 = DefaultShutdownTimeout
	// Ready, if set, is called once the daemon answers on its control
	// socket (tests use it instead of polling).
	Ready func(socket string)
	// LogLevel, if set, is the logger's level: the daemon sets it to the
	// config's log.level whenever the config file changes. Leave it nil
	// when a flag fixed the level.
	LogLevel *slog.LevelVar
	// TrimEvery, if set, is how often history is trimmed, the first time
	// included (default: a minute after start, then every 10 minutes).
	TrimEvery time.Duration
}

// Daemon is the running daemon's state, shared by the parts this package
// wires. Fields are set before anything reads them and not changed after.
type Daemon struct {
	cfg     *config.Config
	log     *slog.Logger
	clock   realize.Clock
	version string
	id      *household.Identity
	db      *store.DB
	socket  string
	pid     int
	started time.Time
	arenas  *arenas       // see arenas.go
	conf    *configSource // the config in force; see reload.go and config()
	hist    *history.Log  // one instance, so commit notifications reach every watcher
	net     *network      // peers and sync; see network.go
	cache   *unreal.Cache // bytes of unreal files; see unreal.go
	nfsAddr string        // where the NFS server listens; "" = not serving
	nfsErr  string        // why it is not serving
	nfsSrv  *nfs.Server   // nil when not serving
	follow  nfsFollower   // the indexers' observer; see follow.go
	xfers   *transfers    // work moving bytes, for status; see transfers.go
	// The Prometheus endpoint's address ("" = not serving), or why it is
	// not serving; see metrics.go.
	metricsAddr, metricsErr string
	// conflictBlobs: blobs of conflict losers, never evicted; see unreal.go.
	conflictBlobs conflictSet
	trimEvery     time.Duration // 0: trimFirst, then trimEvery; see trim.go
}

// Run runs the daemon until ctx is done, then shuts it down cleanly within
// the shutdown timeout. It returns an error if the daemon could not start
// (a second daemon on the same data directory among others) or did not
// stop cleanly.
func Run(ctx context.Context, cfg *config.Config, logger *slog.Logger, opts Options) error {
	d := &Daemon{cfg: cfg, log: logger, clock: opts.Clock, version: opts.Version, pid: os.Getpid(), trimEvery: opts.TrimEvery}
	if d.clock == nil {
		d.clock = realize.SystemClock{}
	}
	d.xfers = newTransfers(d.clock, d.peerName)
	timeout := opts.ShutdownTimeout
	if timeout <= 0 {
		timeout = DefaultShutdownTimeout
	}
	var stack cleanup
	// Cleanups run on a fresh context: ctx is already done when they run.
	defer func() { _ = stack.run(context.WithoutCancel(ctx), timeout, logger) }()

	if err := d.open(ctx, &stack); err != nil {
		return err
	}
	d.followConfig(ctx, &stack, opts.LogLevel)
	ln, err := control.Listen(d.socket)
	if err != nil {
		return err
	}
	stack.push("remove control socket", func(context.Context) error { return removeIfExists(d.socket) })
	if d.arenas, err = startArenas(ctx, d); err != nil {
		ln.Close()
		return err
	}
	stack.push("stop arenas", d.arenas.stop)
	if d.net, err = startNetwork(ctx, d); err != nil {
		return err
	}
	stack.push("stop network", d.net.stop)
	if d.nfsAddr, err = startNFS(ctx, d, &stack); err != nil {
		// The household and the real directories work without the mount:
		// say so loudly and go on.
		logger.Error("nfs server not started", "err", err)
		d.nfsErr = err.Error()
	}
	if d.metricsAddr, err = startMetrics(ctx, d, &stack); err != nil {
		// Like the NFS server: optional, so the daemon runs without it.
		logger.Error("metrics endpoint not started", "err", err)
		d.metricsErr = err.Error()
	}
	srv := control.NewServer(newBackend(d), logger)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	stack.push("stop control server", func(ctx context.Context) error {
		err := srv.Shutdown(ctx)
		if serr := <-served; err == nil {
			err = serr
		}
		return err
	})
	d.started = d.clock.Now()
	logger.Info("daemon started", "peer", d.id.ID().String(), "name", cfg.Name,
		"data", cfg.Data, "socket", d.socket, "arenas", len(cfg.Arenas), "pid", d.pid)
	if opts.Ready != nil {
		opts.Ready(d.socket)
	}
	select {
	case <-ctx.Done():
	case err := <-served:
		served <- err // for the cleanup above
		logger.Error("control server failed", "err", err)
	}
	logger.Info("daemon stopping")
	err = stack.run(context.WithoutCancel(ctx), timeout, logger)
	if err == nil {
		logger.Info("daemon stopped")
	}
	return err
}

// open takes the data directory: creates it, loads the key, opens (and so
// locks) the database, and records the pid. Each step pushes its undo.
func (d *Daemon) open(ctx context.Context, stack *cleanup) error {
	data := d.cfg.Data
	if err := os.MkdirAll(data, 0o700); err != nil {
		return &realize.Error{Op: "create data directory", Kind: realize.IO, Path: data, Err: err}
	}
	id, err := household.LoadIdentity(household.KeyPath(data))
	if err != nil {
		return err
	}
	d.id = id
	db, err := store.Open(ctx, data, store.Options{Peer: id.ID()})
	if err != nil {
		return err
	}
	d.db = db
	stack.push("close database", func(context.Context) error { return db.Close() })
	// Only now, holding the lock, may this daemon touch the pid file and
	// the socket that a previous (killed) daemon may have left behind.
	pidPath := filepath.Join(data, PIDFile)
	if err := writeFileAtomic(pidPath, []byte(strconv.Itoa(d.pid)+"\n")); err != nil {
		return &realize.Error{Op: "write pid file", Kind: realize.IO, Path: pidPath, Err: err}
	}
	stack.push("remove pid file", func(context.Context) error { return removeIfExists(pidPath) })
	d.socket = control.SocketPath(data)
	return nil
}

// daemonStatus describes this process for `realize status`.
func (d *Daemon) daemonStatus() control.DaemonStatus {
	return control.DaemonStatus{
		Running: true,
		PID:     d.pid,
		Peer:    d.id.ID(),
		Name:    d.config().Name,
		Version: d.version,
		Started: d.started,
		DataDir: d.config().Data,
	}
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// cleanup is a stack of undo steps, run last-in first-out, once.
type cleanup struct {
	steps []step
}

type step struct {
	name string
	fn   func(context.Context) error
}

func (c *cleanup) push(name string, fn func(context.Context) error) {
	c.steps = append(c.steps, step{name, fn})
}

// run runs every step within timeout in all. A step that fails is logged
// and reported; the later ones still run, so the database is closed even if
// stopping an arena failed.
func (c *cleanup) run(ctx context.Context, timeout time.Duration, logger *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var errs []error
	for len(c.steps) > 0 {
		s := c.steps[len(c.steps)-1]
		c.steps = c.steps[:len(c.steps)-1]
		if err := s.fn(ctx); err != nil {
			logger.Error("shutdown step failed", "step", s.name, "err", err)
			errs = append(errs, fmt.Errorf("%s: %w", s.name, err))
		}
	}
	if len(errs) > 0 {
		return &realize.Error{Op: "stop daemon", Kind: realize.IO, Err: errors.Join(errs...)}
	}
	return nil
}
