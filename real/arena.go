package real

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/history"
	"github.com/realizefs/realize/internal/store"
	bolt "go.etcd.io/bbolt"
)

// ArenaOptions configure the indexer of one real directory.
type ArenaOptions struct {
	Name     realize.ArenaName
	Root     string // absolute path of the real directory
	DB       *store.DB
	Log      *history.Log
	Self     realize.PeerID
	Hasher   *Hasher       // shared by all arenas; nil = a new one
	Workers  int           // parallel hashes; 0 = number of CPUs
	Rescan   time.Duration // periodic full rescan; 0 = 5 minutes
	Debounce time.Duration // watcher quiet period; 0 = 200 ms
	Exclude  []string      // absolute directories never indexed (the data directory)
	Logger   *slog.Logger
	Clock    realize.Clock
	// DeleteGuard returns the share of the arena's files (percent) one
	// batch may delete without approval, 0 for no limit (see guard.go).
	// It is asked at each decision, so a config reload applies at once.
	// Nil: DefaultDeleteGuard.
	DeleteGuard func() float64
	// Settle is how long deletions wait for more before they are judged
	// together (guard_settle.go); 0 judges each scan's deletions at once.
	Settle time.Duration
	// Observer, if set, hears about moves and listing changes (the NFS
	// view follows them).
	Observer Observer
}

// Arena keeps the index of one real directory up to date.
type Arena struct {
	name     realize.ArenaName
	root     string
	db       *store.DB
	log      *history.Log
	self     realize.PeerID
	hasher   *Hasher
	workers  int
	rescan   time.Duration
	debounce time.Duration
	logger   *slog.Logger
	clock    realize.Clock
	observer Observer

	exclude     []string      // cleaned absolute paths
	excludeInfo []os.FileInfo // same, for os.SameFile (symlinked or bind-mounted data dirs)

	scanMu sync.Mutex // one scan at a time: a plan is computed against a stable index

	ignore *Ignorer // safe for concurrent use

	guardShare func() float64
	settle     time.Duration
	guard      guardState

	status  arenaStatus
	maps    mapCache    // block maps of blobs being served
	commits commitQueue // placements waiting for their record (commit.go)
}

// NewArena checks the directory and prepares its indexer.
func NewArena(opt ArenaOptions) (*Arena, error) {
	info, err := os.Stat(opt.Root)
	if err != nil || !info.IsDir() {
		if err == nil {
			err = errors.New("not a directory")
		}
		return nil, &realize.Error{Op: "open arena", Kind: realize.NotExist, Arena: opt.Name, Path: opt.Root, Err: err}
	}
	a := &Arena{
		name: opt.Name, root: filepath.Clean(opt.Root), db: opt.DB, log: opt.Log, self: opt.Self,
		hasher: opt.Hasher, workers: opt.Workers, rescan: opt.Rescan, debounce: opt.Debounce,
		logger: opt.Logger, clock: opt.Clock, guardShare: opt.DeleteGuard, settle: opt.Settle,
		observer: opt.Observer,
	}
	if a.hasher == nil {
		a.hasher = NewHasher()
	}
	if a.workers <= 0 {
		a.workers = runtime.NumCPU()
	}
	if a.rescan <= 0 {
		a.rescan = 5 * time.Minute
	}
	if a.debounce <= 0 {
		a.debounce = 200 * time.Millisecond
	}
	if a.logger == nil {
		a.logger = slog.New(slog.DiscardHandler)
	}
	a.logger = a.logger.With("arena", string(a.name))
	if a.clock == nil {
		a.clock = realize.SystemClock{}
	}
	for _, d := range opt.Exclude {
		d = filepath.Clean(d)
		a.exclude = append(a.exclude, d)
		if fi, err := os.Stat(d); err == nil {
			a.excludeInfo = append(a.excludeInfo, fi)
		}
	}
	if a.ignore, err = NewIgnorer(a.root, a.logger); err != nil {
		a.logger.Warn("ignore file unreadable", "err", err)
		a.ignore, _ = NewIgnorer(os.DevNull, a.logger)
	}
	if err := a.loadHold(); err != nil {
		return nil, err
	}
	return a, nil
}

// Name returns the arena's name.
func (a *Arena) Name() realize.ArenaName { return a.name }

// Root returns the real directory.
func (a *Arena) Root() string { return a.root }

func (a *Arena) abs(p realize.Path) string {
	if p.IsRoot() {
		return a.root
	}
	return filepath.Join(a.root, filepath.FromSlash(string(p)))
}

func (a *Arena) ignored(p realize.Path, isDir bool) bool { return a.ignore.Ignored(p, isDir) }

// isOwnData tells whether a directory is the daemon's own data (or inside
// it): indexing it would record the database recording itself.
func (a *Arena) isOwnData(info os.FileInfo) bool {
	for _, x := range a.excludeInfo {
		if os.SameFile(info, x) {
			return true
		}
	}
	return false
}

func (a *Arena) isOwnDataPath(p realize.Path) bool {
	abs := a.abs(p)
	for _, x := range a.exclude {
		if abs == x {
			return true
		}
	}
	return false
}

// Run indexes the arena until ctx ends: a full scan, then watcher batches,
// periodic rescans (the safety net for missed events and the only source of
// changes where watching is unavailable) and retries of busy files.
func (a *Arena) Run(ctx context.Context) error {
	w, err := Watch(ctx, a.root, WatchOptions{
		Debounce: a.debounce,
		Skip:     func(p realize.Path, isDir bool) bool { return a.ignored(p, isDir) || isDir && a.isOwnDataPath(p) },
		Logger:   a.logger,
	})
	var batches <-chan Batch
	if err != nil {
		a.logger.Warn("watching unavailable, relying on periodic rescans", "err", err, "rescan", a.rescan)
	} else {
		defer w.Close()
		batches = w.Batches()
		a.status.watcher.Store(w)
	}
	mw := newMountWatch()
	defer mw.stop()
	mw.check(ctx, a)
	mounts := time.NewTicker(mountCheck)
	defer mounts.Stop()
	a.logScanErr(a.ScanAll(ctx))
	rescan := time.NewTicker(a.rescan)
	defer rescan.Stop()
	// Files that changed while being hashed are tried again soon: a large
	// file still being written should be indexed as soon as it settles.
	// Deletions waiting to settle, and rescans while deletions are held,
	// are looked at on the same tick (guard_settle.go, guard.go).
	retry := time.NewTicker(250 * time.Millisecond)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case b, ok := <-batches:
			if !ok {
				batches = nil
				continue
			}
			a.logScanErr(a.handleBatch(ctx, b))
		case b, ok := <-mw.batches():
			if !ok {
				mw.stop()
				mw.mnt = "" // look again at the next check
				continue
			}
			a.logScanErr(a.handleBatch(ctx, b))
		case <-mounts.C:
			mw.check(ctx, a)
		case s := <-mw.started:
			mw.arrived(s, a)
		case <-rescan.C:
			a.logScanErr(a.ScanAll(ctx))
		case <-retry.C:
			if files := a.status.takeRetries(); len(files) > 0 {
				a.logScanErr(a.ScanPaths(ctx, nil, files))
			}
			if a.settleDue(a.clock.Now()) {
				a.logScanErr(a.Settle(ctx))
			}
			if a.holdRescanDue(a.clock.Now()) {
				a.logScanErr(a.ScanAll(ctx))
			}
		}
	}
}

func (a *Arena) logScanErr(err error) {
	if err != nil && !errors.Is(err, context.Canceled) {
		a.logger.Error("scan failed", "err", err)
	}
}

func (a *Arena) handleBatch(ctx context.Context, b Batch) error {
	if b.Overflow {
		return a.ScanAll(ctx)
	}
	// While deletions are held, what is held is kept exact by full scans
	// (a missing file coming back shows only by comparing everything),
	// at most every holdRescan: the state is rare, and a no-change scan
	// is cheap, but a mass deletion still running sends a batch a second.
	if a.holding() {
		a.guard.rescan.Store(true)
		return nil
	}
	for _, f := range b.Files {
		if f.Base() == IgnoreFile {
			return a.reloadIgnore(ctx, f.Dir())
		}
	}
	return a.ScanPaths(ctx, b.Dirs, b.Files)
}

// reloadIgnore follows an edited ignore file. The full scan that follows
// records paths it no longer ignores; paths it now ignores keep their last
// recorded state (ignoring is not deleting).
func (a *Arena) reloadIgnore(ctx context.Context, dir realize.Path) error {
	if err := a.ignore.Reload(dir); err != nil {
		a.logger.Warn("ignore file unreadable", "dir", string(dir), "err", err)
	}
	return a.ScanAll(ctx)
}

// ScanAll compares the whole real directory with the index and records
// every difference.
func (a *Arena) ScanAll(ctx context.Context) error {
	a.lockScan()
	defer a.scanMu.Unlock()
	return a.scanAllLocked(ctx)
}

func (a *Arena) scanAllLocked(ctx context.Context) error {
	a.status.scanning.Store(true)
	defer a.status.scanning.Store(false)
	a.status.resetSkipped()
	// Ignore files are cheap to re-read, and an edit the watcher missed
	// must not keep old rules alive until the daemon restarts.
	if err := a.ignore.Reload(""); err != nil {
		a.logger.Warn("ignore file unreadable", "err", err)
	}
	start := a.clock.Now()
	p := &plan{full: true}
	if err := a.diffDir(ctx, "", true, p); err != nil {
		return err
	}
	err := a.record(ctx, p)
	a.guard.lastFull.Store(a.clock.Now().UnixNano())
	if err == nil {
		a.status.lastScan.Store(a.clock.Now().UnixNano())
		a.logger.Debug("scan done", "took", a.clock.Now().Sub(start), "hashed", len(p.hash))
	}
	return err
}

// ScanPaths compares some directories (not their known subdirectories) and
// some files with the index and records the differences.
func (a *Arena) ScanPaths(ctx context.Context, dirs, files []realize.Path) error {
	a.lockScan()
	defer a.scanMu.Unlock()
	p := &plan{}
	for _, d := range dirs {
		if d.IsRoot() || !a.ignored(d, true) && a.isRealDir(d) {
			if err := a.diffDir(ctx, d, false, p); err != nil {
				return err
			}
		}
	}
	for _, f := range files {
		if a.noSymlinkAbove(f) != nil {
			continue // reached through a symlinked directory: not ours
		}
		if err := a.checkFile(f, p); err != nil {
			return err
		}
	}
	return a.record(ctx, p)
}

// isRealDir tells whether d is a directory (not a symlink to one) with no
// symlink above it: the only kind of directory a diff may read.
func (a *Arena) isRealDir(d realize.Path) bool {
	info, err := os.Lstat(a.abs(d))
	return err == nil && info.IsDir() && a.noSymlinkAbove(d) == nil
}

// Counts returns the arena's totals from the index.
func (a *Arena) Counts() (Counts, error) {
	var c Counts
	err := a.db.View(func(tx *bolt.Tx) error {
		ix, err := OpenIndex(tx, a.name)
		if err == nil {
			c = ix.Counts()
		}
		return err
	})
	return c, err
}

// Status is the indexer's state, for `realize status`.
type Status struct {
	Counts
	PendingHash  int64
	PendingBytes int64
	Scanning     bool
	Watching     bool
	LastScan     time.Time
	Skipped      []Skipped
	// SettlingDeletes are deletions waiting a moment for more before the
	// delete guard judges them (guard_settle.go).
	SettlingDeletes int64
}

// Skipped is a path that could not be indexed.
type Skipped struct {
	Path   string
	Reason string
}

// Status reports the indexer's state.
func (a *Arena) Status() (Status, error) {
	c, err := a.Counts()
	s := a.status.snapshot()
	s.Counts = c
	s.SettlingDeletes = a.SettlingDeletes()
	return s, err
}

func (a *Arena) skip(p realize.Path, err error) { a.skipRaw(string(p), err) }

func (a *Arena) skipRaw(p string, err error) {
	reason := err.Error()
	if errors.Is(err, fs.ErrPermission) {
		reason = "permission denied" // the path says which; the OS error repeats it
	}
	if a.status.addSkipped(p, reason) {
		a.logger.Warn("path not indexed", "path", p, "err", err)
	}
}

func (a *Arena) retryLater(p realize.Path) { a.status.addRetry(p) }

// arenaStatus is the live, lock-protected part of Status.
type arenaStatus struct {
	pendingHash  atomic.Int64
	pendingBytes atomic.Int64
	scanning     atomic.Bool
	lastScan     atomic.Int64
	watcher      atomic.Pointer[Watcher]

	mu      sync.Mutex
	skipped map[string]string
	before  map[string]string // skipped in the previous full scan: not logged again
	retries map[realize.Path]bool
}

const maxSkipped = 1000

func (s *arenaStatus) addPending(n, bytes int64) { s.pendingHash.Add(n); s.pendingBytes.Add(bytes) }
func (s *arenaStatus) donePending(bytes int64)   { s.pendingHash.Add(-1); s.pendingBytes.Add(-bytes) }
func (s *arenaStatus) clearPending()             { s.pendingHash.Store(0); s.pendingBytes.Store(0) }

// addSkipped remembers a skipped path; it reports whether it is new, so
// each problem is logged once, not at every rescan.
func (s *arenaStatus) addSkipped(p, reason string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.skipped == nil {
		s.skipped = map[string]string{}
	}
	if old, ok := s.skipped[p]; ok && old == reason || len(s.skipped) >= maxSkipped {
		return false
	}
	s.skipped[p] = reason
	return s.before[p] != reason
}

func (s *arenaStatus) unskip(p string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.skipped, p)
}

func (s *arenaStatus) resetSkipped() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.before, s.skipped = s.skipped, nil
}

func (s *arenaStatus) addRetry(p realize.Path) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.retries == nil {
		s.retries = map[realize.Path]bool{}
	}
	s.retries[p] = true
}

func (s *arenaStatus) takeRetries() []realize.Path {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]realize.Path, 0, len(s.retries))
	for p := range s.retries {
		out = append(out, p)
	}
	s.retries = nil
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func (s *arenaStatus) snapshot() Status {
	st := Status{
		PendingHash: s.pendingHash.Load(), PendingBytes: s.pendingBytes.Load(),
		Scanning: s.scanning.Load(),
	}
	if w := s.watcher.Load(); w != nil {
		st.Watching = w.Watching()
	}
	if t := s.lastScan.Load(); t != 0 {
		st.LastScan = time.Unix(0, t)
	}
	s.mu.Lock()
	for p, r := range s.skipped {
		st.Skipped = append(st.Skipped, Skipped{Path: p, Reason: r})
	}
	s.mu.Unlock()
	sort.Slice(st.Skipped, func(i, j int) bool { return st.Skipped[i].Path < st.Skipped[j].Path })
	return st
}
