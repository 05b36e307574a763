package nfs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-git/go-billy/v5"
	"github.com/realizefs/realize"
	"github.com/realizefs/realize/internal/store"
	gonfs "github.com/willscott/go-nfs"
)

// Options configure a Server.
type Options struct {
	Tree Tree      // what is served
	DB   *store.DB // where file handles are kept (bucket "nfs")
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
	// ShutdownGrace bounds how long Serve waits, once its context is
	// done, for requests being handled to finish (default 5 s).
	ShutdownGrace time.Duration
}

// Server serves a Tree over NFSv3 (MOUNT and NFS on one port, no
// portmapper). The merged read-write view is mounted at "/" (or any
// directory below it, "/share" being an alias of "/"), the read-only
// all-files view at "/.all".
type Server struct {
	tree    Tree
	handles *handles
	log     *slog.Logger
	grace   time.Duration
	open    *openFiles
	handler *handler
	started time.Time
	uid     uint32
	gid     uint32

	conflictChange atomic.Int64
	dirTimes       dirTimes // follow.go
	ops            opCounts // calls received, by procedure (ops.go)

	mu     sync.Mutex
	mounts map[mountKey]*mountFS
	ctx    context.Context // canceled when Serve stops
	cancel context.CancelFunc
	conns  map[*fixConn]struct{}
	closed bool // no new connections
}

type mountKey struct {
	view view
	root uint64
}

// New makes a Server over opts.Tree, its handles kept in opts.DB.
func New(opts Options) (*Server, error) {
	if opts.Tree == nil || opts.DB == nil {
		return nil, &realize.Error{Op: "nfs server", Kind: realize.Invalid, Err: errors.New("a Tree and a DB are needed")}
	}
	h, err := openHandles(opts.DB)
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	grace := opts.ShutdownGrace
	if grace <= 0 {
		grace = 5 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		tree:    opts.Tree,
		handles: h,
		log:     log,
		grace:   grace,
		open:    newOpenFiles(log),
		started: time.Now(),
		uid:     uint32(os.Getuid()),
		gid:     uint32(os.Getgid()),
		mounts:  map[mountKey]*mountFS{},
		ctx:     ctx,
		cancel:  cancel,
		conns:   map[*fixConn]struct{}{},
	}
	s.handler = &handler{s: s}
	installLogger(log)
	return s, nil
}

// Serve answers NFS and MOUNT requests on l until ctx is done, then stops
// accepting, lets the requests being handled finish (within the grace
// period), closes the connections and the files it kept open, and
// returns nil. l is closed. A Server serves once.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	fl := &fixListener{Listener: l, s: s}
	srv := &gonfs.Server{Handler: s.handler, Context: s.ctx}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(fl) }()

	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var err error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err = <-errc:
			break loop
		case now := <-tick.C:
			s.open.sweep(now, false)
		}
	}
	_ = l.Close()
	s.shutdownConns()
	s.cancel()
	s.open.sweep(time.Now(), true)
	if err != nil && ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
		return &realize.Error{Op: "nfs serve", Kind: realize.IO, Err: err}
	}
	return nil
}

// shutdownConns stops every connection at its next request boundary and
// waits (within the grace period) for the requests in hand.
func (s *Server) shutdownConns() {
	s.mu.Lock()
	s.closed = true
	conns := make([]*fixConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.stop()
	}
	deadline := time.After(s.grace)
	for _, c := range conns {
		select {
		case <-c.done:
		case <-deadline:
			s.log.Warn("nfs: requests still running at shutdown; closing their connections")
			for _, c := range conns {
				_ = c.Close()
			}
			return
		}
	}
}

// track adds or removes a connection; false when the server is stopping
// (the connection is then to be closed).
func (s *Server) track(c *fixConn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.conns, c)
		return true
	}
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) mountFS(v view, root uint64) *mountFS {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := mountKey{v, root}
	if m := s.mounts[k]; m != nil {
		return m
	}
	m := &mountFS{s: s, view: v, rootID: root}
	s.mounts[k] = m
	return m
}

// rootFS is the root of a view.
func (s *Server) rootFS(v view) *mountFS {
	id, err := s.handles.id("")
	if err != nil {
		s.log.Warn("nfs: root handle", "err", err)
	}
	return s.mountFS(v, id)
}

func (s *Server) fromHandle(fh []byte) (billy.Filesystem, []string, error) {
	v, root, id, err := s.handles.decode(fh)
	if err != nil {
		return nil, nil, err
	}
	xp, ok, err := s.handles.path(id)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		return nil, nil, errStale
	}
	rp, ok, err := s.handles.path(root)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		return nil, nil, errStale
	}
	var rel string
	switch {
	case xp == rp:
	case rp == "":
		rel = xp
	case strings.HasPrefix(xp, rp+"/"):
		rel = xp[len(rp)+1:]
	default:
		return nil, nil, errStale // moved out of its mount
	}
	var comps []string
	if rel != "" {
		comps = strings.Split(rel, "/")
	}
	return s.mountFS(v, root), comps, nil
}

func (s *Server) conflictChanged() { s.conflictChange.Store(time.Now().UnixNano()) }

// go-nfs logs through one package-level logger; it goes to the logger of
// the latest Server, at debug level (go-nfs reports ordinary client
// errors, a lookup of a missing name, as errors).
var (
	nfsLog     atomic.Pointer[slog.Logger]
	nfsLogOnce sync.Once
)

func installLogger(l *slog.Logger) {
	nfsLog.Store(l)
	nfsLogOnce.Do(func() { gonfs.SetLogger(&logAdapter{level: gonfs.InfoLevel}) })
}

type logAdapter struct{ level gonfs.LogLevel }

func (l *logAdapter) out(level gonfs.LogLevel, msg string) {
	if level > l.level {
		return
	}
	if lg := nfsLog.Load(); lg != nil {
		lg.Debug("go-nfs: " + msg)
	}
}

func (l *logAdapter) SetLevel(level gonfs.LogLevel)                   { l.level = level }
func (l *logAdapter) GetLevel() gonfs.LogLevel                        { return l.level }
func (l *logAdapter) ParseLevel(level string) (gonfs.LogLevel, error) { return gonfs.InfoLevel, nil }
func (l *logAdapter) Panic(args ...interface{})                       { panic(fmt.Sprint(args...)) }
func (l *logAdapter) Fatal(args ...interface{})                       { l.out(gonfs.FatalLevel, fmt.Sprint(args...)) }
func (l *logAdapter) Error(args ...interface{})                       { l.out(gonfs.ErrorLevel, fmt.Sprint(args...)) }
func (l *logAdapter) Warn(args ...interface{})                        { l.out(gonfs.WarnLevel, fmt.Sprint(args...)) }
func (l *logAdapter) Info(args ...interface{})                        { l.out(gonfs.InfoLevel, fmt.Sprint(args...)) }
func (l *logAdapter) Debug(args ...interface{})                       { l.out(gonfs.DebugLevel, fmt.Sprint(args...)) }
func (l *logAdapter) Trace(args ...interface{})                       { l.out(gonfs.TraceLevel, fmt.Sprint(args...)) }
func (l *logAdapter) Print(args ...interface{})                       { l.out(gonfs.InfoLevel, fmt.Sprint(args...)) }
func (l *logAdapter) Panicf(format string, args ...interface{})       { panic(fmt.Sprintf(format, args...)) }
func (l *logAdapter) Fatalf(format string, args ...interface{}) {
	l.out(gonfs.FatalLevel, fmt.Sprintf(format, args...))
}
func (l *logAdapter) Errorf(format string, args ...interface{}) {
	l.out(gonfs.ErrorLevel, fmt.Sprintf(format, args...))
}
func (l *logAdapter) Warnf(format string, args ...interface{}) {
	l.out(gonfs.WarnLevel, fmt.Sprintf(format, args...))
}
func (l *logAdapter) Infof(format string, args ...interface{}) {
	l.out(gonfs.InfoLevel, fmt.Sprintf(format, args...))
}
func (l *logAdapter) Debugf(format string, args ...interface{}) {
	l.out(gonfs.DebugLevel, fmt.Sprintf(format, args...))
}
func (l *logAdapter) Tracef(format string, args ...interface{}) {
	l.out(gonfs.TraceLevel, fmt.Sprintf(format, args...))
}
func (l *logAdapter) Printf(format string, args ...interface{}) {
	l.out(gonfs.InfoLevel, fmt.Sprintf(format, args...))
}
