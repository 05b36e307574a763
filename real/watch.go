package real

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/realizefs/realize"
)

// Batch is what changed since the last batch, as paths relative to the
// arena root, each listed once, sorted.
type Batch struct {
	// Dirs are directories whose entry list may have changed (something was
	// created, removed or renamed in them); "" is the root. A directory that
	// appeared is listed with every directory found below it, since files
	// can be created in it before it is watched.
	Dirs []realize.Path
	// Files are paths whose content or metadata may have changed, including
	// files created, removed or renamed (so an ignore file that appears or
	// goes away is seen here).
	Files []realize.Path
	// Overflow means events were lost (the kernel queue overflowed, the
	// watch failed, too many paths were pending): rescan everything.
	Overflow bool
}

// WatchOptions tune a Watcher. The zero value is usable.
type WatchOptions struct {
	Debounce time.Duration // quiet period before a batch is sent; default 200ms
	MaxDelay time.Duration // a batch is sent at the latest this long after its first change; default 1s
	// Skip tells paths not to report and directories not to watch (ignored
	// paths, the daemon's own data directory). It is called from the
	// watcher's goroutine only. Nil skips nothing.
	Skip       func(rel realize.Path, isDir bool) bool
	MaxPending int          // distinct paths held before collapsing to Overflow; default 100000
	Logger     *slog.Logger // default slog.Default()

	// failAdd, when set, can make adding a watch fail (tests).
	failAdd func(path string) error
}

// Watcher reports changes below a directory, in batches. It watches every
// directory of the tree (fsnotify watches are not recursive), including
// directories created later.
type Watcher struct {
	root     string
	prefix   string // root with a trailing separator
	opt      WatchOptions
	fsw      *fsnotify.Watcher
	out      chan Batch
	watching atomic.Bool
	cancel   context.CancelFunc
	done     chan struct{}
	once     sync.Once

	// Owned by the goroutine running loop.
	tree    dirTree
	pending pendingSet
}

// Watch starts watching the tree at root. When it returns, every directory
// of the tree (but skipped ones) is watched, so a scan started afterwards
// misses nothing: a change after the scan read a directory is reported. It
// stops when ctx is done or Close is called; Batches is then closed.
func Watch(ctx context.Context, root string, opt WatchOptions) (*Watcher, error) {
	const op = "watch"
	opt = opt.withDefaults()
	root = filepath.Clean(root)
	if fi, err := os.Stat(root); err != nil {
		return nil, &realize.Error{Op: op, Kind: errKind(err), Path: root, Err: err}
	} else if !fi.IsDir() {
		return nil, &realize.Error{Op: op, Kind: realize.Invalid, Path: root, Err: errors.New("not a directory")}
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, &realize.Error{Op: op, Kind: realize.Unavailable, Path: root, Err: err}
	}
	w := &Watcher{
		root: root, prefix: strings.TrimSuffix(root, string(filepath.Separator)) + string(filepath.Separator),
		opt: opt, fsw: fsw, out: make(chan Batch), done: make(chan struct{}),
	}
	w.pending.max = opt.MaxPending
	w.watching.Store(true)
	if err := w.add(root); err != nil {
		fsw.Close()
		return nil, &realize.Error{Op: op, Kind: realize.Unavailable, Path: root, Err: err}
	}
	if err := w.watchBelow(ctx, "", false); err != nil {
		fsw.Close()
		return nil, &realize.Error{Op: op, Kind: realize.Canceled, Path: root, Err: err}
	}
	ctx, w.cancel = context.WithCancel(ctx)
	go w.loop(ctx)
	return w, nil
}

func (o WatchOptions) withDefaults() WatchOptions {
	if o.Debounce <= 0 {
		o.Debounce = 200 * time.Millisecond
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = time.Second
	}
	if o.MaxPending <= 0 {
		o.MaxPending = 100_000
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Skip == nil {
		o.Skip = func(realize.Path, bool) bool { return false }
	}
	return o
}

// Batches delivers the batches. It is closed when the watcher stops.
func (w *Watcher) Batches() <-chan Batch { return w.out }

// Watching reports whether every directory is watched. It turns false for
// good when a watch could not be added (on Linux typically the inotify
// watch limit, fs.inotify.max_user_watches); changes in unwatched
// directories are then only found by rescans, which the caller must run
// periodically. Existing watches keep reporting.
func (w *Watcher) Watching() bool { return w.watching.Load() }

// Close stops the watcher and waits until it has released its resources.
func (w *Watcher) Close() error {
	w.once.Do(func() {
		w.cancel()
		<-w.done
	})
	return nil
}

func (w *Watcher) abs(p realize.Path) string {
	if p.IsRoot() {
		return w.root
	}
	return w.prefix + filepath.FromSlash(string(p))
}

func (w *Watcher) add(abs string) error {
	if w.opt.failAdd != nil {
		if err := w.opt.failAdd(abs); err != nil {
			return err
		}
	}
	return w.fsw.Add(abs)
}

// watchDir adds a watch on dir, and reports whether it did. Running out of
// watches degrades the watcher instead of failing it.
func (w *Watcher) watchDir(dir realize.Path) bool {
	if !w.watching.Load() {
		return false
	}
	err := w.add(w.abs(dir))
	switch {
	case err == nil:
		w.tree.add(dir)
		return true
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		w.degrade(err)
	case errors.Is(err, os.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		// Gone again already; its parent reports that.
	default:
		w.opt.Logger.Warn("cannot watch directory", "dir", string(dir), "err", err)
	}
	return false
}

func (w *Watcher) degrade(err error) {
	if w.watching.Swap(false) {
		w.opt.Logger.Warn("watch limit reached; changes found by periodic rescans only",
			"root", w.root, "err", err, "linux_hint", "raise fs.inotify.max_user_watches")
		w.pending.lost()
	}
}

// watchBelow watches dir's subdirectories, recursively; dir is watched
// already, so anything created in it from now on is reported, and anything
// created before is found here. With report set, each directory found is
// reported too (a new tree the caller must scan).
func (w *Watcher) watchBelow(ctx context.Context, dir realize.Path, report bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ents, err := os.ReadDir(w.abs(dir))
	if err != nil {
		w.opt.Logger.Debug("cannot list directory to watch", "dir", string(dir), "err", err)
	}
	for _, e := range ents {
		if !e.IsDir() || realize.CheckName(e.Name()) != nil {
			continue // not a directory (symlinks are not followed), or not a name Realize can carry
		}
		sub := dir.Join(e.Name())
		if w.opt.Skip(sub, true) || !w.watchDir(sub) {
			continue
		}
		if report {
			w.pending.dir(sub)
		}
		if err := w.watchBelow(ctx, sub, report); err != nil {
			return err
		}
	}
	return nil
}

// loop turns events into batches: a batch is ready once events stopped for
// Debounce, or MaxDelay after its first event, and is held (and still
// grows) until the caller takes it, so a slow caller never stalls the
// reading of events.
func (w *Watcher) loop(ctx context.Context) {
	defer close(w.done)
	defer close(w.out)
	defer w.fsw.Close()
	quiet, late := time.NewTimer(time.Hour), time.NewTimer(time.Hour)
	quiet.Stop()
	late.Stop()
	timing, ready := false, false // late runs for the pending batch; the batch may be sent
	for {
		if w.pending.grew {
			w.pending.grew = false
			if !timing {
				late.Reset(w.opt.MaxDelay)
				timing = true
			}
			quiet.Reset(w.opt.Debounce)
		}
		var out chan<- Batch
		var b Batch
		if ready && !w.pending.empty() {
			out, b = w.out, w.pending.batch()
		}
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return
			}
			w.handle(ctx, ev)
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return
			}
			w.opt.Logger.Warn("watch events lost", "root", w.root, "err", err)
			w.pending.lost()
		case <-quiet.C:
			ready = true
		case <-late.C:
			ready = true
		case out <- b:
			w.pending = pendingSet{max: w.pending.max}
			timing, ready = false, false
			quiet.Stop()
			late.Stop()
		}
	}
}

func (w *Watcher) handle(ctx context.Context, ev fsnotify.Event) {
	if ev.Name == w.root {
		w.rootEvent(ev)
		return
	}
	rel, ok := strings.CutPrefix(ev.Name, w.prefix)
	if !ok {
		return
	}
	p, err := realize.ParsePath(filepath.ToSlash(rel))
	if err != nil {
		// Not a name Realize can carry; the scan of its parent says what to
		// do with it.
		w.pending.dir(validParent(filepath.ToSlash(rel)))
		return
	}
	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		w.removed(p)
	}
	if ev.Has(fsnotify.Create) {
		w.created(ctx, p)
	}
	if ev.Has(fsnotify.Write) || ev.Has(fsnotify.Chmod) {
		w.changed(ctx, p)
	}
}

func (w *Watcher) rootEvent(ev fsnotify.Event) {
	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		w.opt.Logger.Error("watched directory removed or moved", "root", w.root, "op", ev.Op.String())
		w.degrade(fmt.Errorf("%s: %v", w.root, ev.Op))
		w.pending.lost()
		return
	}
	w.pending.dir("")
}

// created handles a new entry: its parent's listing changed, and a new
// directory gets watches on its whole tree, reported so it is scanned.
func (w *Watcher) created(ctx context.Context, p realize.Path) {
	fi, err := os.Lstat(w.abs(p))
	isDir := err == nil && fi.IsDir()
	if w.opt.Skip(p, isDir) {
		return
	}
	w.pending.dir(p.Dir())
	if !isDir {
		w.pending.file(p)
		return
	}
	w.pending.dir(p)
	if w.watchDir(p) {
		_ = w.watchBelow(ctx, p, true) // only fails when ctx is done
	}
}

// removed handles an entry deleted or moved away. A directory moved within
// the tree keeps its inotify watches, which would go on reporting under the
// old name; so the watches of a removed directory's whole subtree are
// dropped, and its new name, if any, is watched afresh on the Create that
// follows.
func (w *Watcher) removed(p realize.Path) {
	wasDir := w.tree.has(p)
	if !wasDir && w.opt.Skip(p, false) {
		return
	}
	w.pending.dir(p.Dir())
	if !wasDir {
		w.pending.file(p)
		return
	}
	w.tree.remove(p, func(d realize.Path) {
		_ = w.fsw.Remove(w.abs(d)) // often gone already with its directory
	})
}

func (w *Watcher) changed(ctx context.Context, p realize.Path) {
	if w.tree.has(p) {
		w.pending.dir(p) // a directory's mode may make its entries readable or not
		return
	}
	if fi, err := os.Lstat(w.abs(p)); err == nil && fi.IsDir() {
		// A directory that could not be watched (unreadable until this
		// chmod) is watched now, and scanned.
		if !w.opt.Skip(p, true) {
			w.pending.dir(p)
			if w.watchDir(p) {
				_ = w.watchBelow(ctx, p, true) // only fails when ctx is done
			}
		}
		return
	}
	if !w.opt.Skip(p, false) {
		w.pending.file(p)
	}
}

// validParent returns the longest prefix of rel made of valid names.
func validParent(rel string) realize.Path {
	var p realize.Path
	for name := range strings.SplitSeq(rel, "/") {
		if realize.CheckName(name) != nil {
			break
		}
		p = p.Join(name)
	}
	if p == realize.Path(rel) {
		return p.Dir()
	}
	return p
}

// pendingSet collects the paths of the next batch, once each, and gives up
// on them (Overflow) past max.
type pendingSet struct {
	max         int
	seen        map[realize.Path]uint8 // bits: 1 listed in dirs, 2 in files
	dirs, files []realize.Path
	overflow    bool
	sorted      bool
	grew        bool // something was added since the loop last looked
}

func (s *pendingSet) dir(p realize.Path)  { s.add(p, 1, &s.dirs) }
func (s *pendingSet) file(p realize.Path) { s.add(p, 2, &s.files) }

func (s *pendingSet) add(p realize.Path, bit uint8, list *[]realize.Path) {
	if s.overflow || s.seen[p]&bit != 0 {
		return
	}
	if len(s.dirs)+len(s.files) >= s.max {
		s.lost()
		return
	}
	if s.seen == nil {
		s.seen = map[realize.Path]uint8{}
	}
	s.seen[p] |= bit
	*list = append(*list, p)
	s.sorted, s.grew = false, true
}

// lost drops the paths: the caller will rescan everything anyway.
func (s *pendingSet) lost() {
	if !s.overflow {
		*s = pendingSet{max: s.max, overflow: true, grew: true}
	}
}

func (s *pendingSet) empty() bool { return !s.overflow && len(s.dirs)+len(s.files) == 0 }

// batch returns the pending paths. The slices stay owned by s until the
// batch is sent, after which s starts afresh.
func (s *pendingSet) batch() Batch {
	if !s.sorted {
		slices.Sort(s.dirs)
		slices.Sort(s.files)
		s.sorted = true
	}
	return Batch{Dirs: s.dirs, Files: s.files, Overflow: s.overflow}
}

// dirTree is the set of watched directories, as a tree so that the watches
// below a removed directory are found without scanning them all.
type dirTree struct{ root dirNode }

type dirNode struct{ kids map[string]*dirNode }

func (t *dirTree) node(p realize.Path, create bool) *dirNode {
	n := &t.root
	if p.IsRoot() {
		return n
	}
	for name := range strings.SplitSeq(string(p), "/") {
		k := n.kids[name]
		if k == nil {
			if !create {
				return nil
			}
			if n.kids == nil {
				n.kids = map[string]*dirNode{}
			}
			k = &dirNode{}
			n.kids[name] = k
		}
		n = k
	}
	return n
}

func (t *dirTree) add(p realize.Path)      { t.node(p, true) }
func (t *dirTree) has(p realize.Path) bool { return t.node(p, false) != nil }

// remove forgets p and everything below it, calling fn for each.
func (t *dirTree) remove(p realize.Path, fn func(realize.Path)) {
	parent := t.node(p.Dir(), false)
	if p.IsRoot() || parent == nil || parent.kids[p.Base()] == nil {
		return
	}
	n := parent.kids[p.Base()]
	delete(parent.kids, p.Base())
	n.walk(p, fn)
}

func (n *dirNode) walk(p realize.Path, fn func(realize.Path)) {
	fn(p)
	for name, k := range n.kids {
		k.walk(p.Join(name), fn)
	}
}
