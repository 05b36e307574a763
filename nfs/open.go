package nfs

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/realizefs/realize"
)

// go-nfs opens and closes a file for every READ and WRITE. The Tree's
// files are kept open between them instead: a reader per export path
// (reopened when the file's size or mtime changes) and a writer per path,
// each closed once idle. Closing a writer is when the Tree sees the write
// end (and records the change); it also happens before anything else is
// done to the path through NFS (rename, remove, setattr), and at shutdown.
const (
	writerIdle = time.Second
	readerIdle = 5 * time.Second
)

type readerEntry struct {
	xp          string
	rf          ReadFile
	size, mtime int64
	refs        int
	last        time.Time
	dead        bool // replaced or forgotten: close at the last release
}

type writerEntry struct {
	xp    string
	wf    WriteFile
	mu    sync.Mutex // size, mtime
	size  int64      // as written through NFS: what GETATTR shows while open
	mtime int64
	refs  int
	last  time.Time
	dead  bool
}

type openFiles struct {
	log     *slog.Logger
	mu      sync.Mutex
	readers map[string]*readerEntry
	writers map[string]*writerEntry
}

func newOpenFiles(log *slog.Logger) *openFiles {
	return &openFiles{log: log, readers: map[string]*readerEntry{}, writers: map[string]*writerEntry{}}
}

// reader returns the shared reader of file node n.
func (o *openFiles) reader(ctx context.Context, n *node) (*readerEntry, error) {
	o.mu.Lock()
	if e := o.readers[n.xp]; e != nil {
		if e.size == n.meta.Size && e.mtime == n.meta.MTime {
			e.refs++
			o.mu.Unlock()
			return e, nil
		}
		o.dropReaderLocked(e)
	}
	o.mu.Unlock()
	var rf ReadFile
	var err error
	if n.kind == nConflictFile {
		rf, err = n.arena.OpenConflict(ctx, n.cv)
	} else {
		rf, err = n.arena.Open(ctx, n.path)
	}
	if err != nil {
		return nil, err
	}
	e := &readerEntry{xp: n.xp, rf: rf, size: n.meta.Size, mtime: n.meta.MTime, refs: 1, last: time.Now()}
	o.mu.Lock()
	if old := o.readers[n.xp]; old != nil {
		o.dropReaderLocked(old)
	}
	o.readers[n.xp] = e
	o.mu.Unlock()
	return e, nil
}

func (o *openFiles) dropReaderLocked(e *readerEntry) {
	if o.readers[e.xp] == e {
		delete(o.readers, e.xp)
	}
	e.dead = true
	if e.refs == 0 {
		o.closeReader(e)
	}
}

func (o *openFiles) closeReader(e *readerEntry) {
	if err := e.rf.Close(); err != nil {
		o.log.Debug("nfs: close reader", "path", e.xp, "err", err)
	}
}

func (o *openFiles) releaseReader(e *readerEntry) {
	o.mu.Lock()
	defer o.mu.Unlock()
	e.refs--
	e.last = time.Now()
	if e.dead && e.refs == 0 {
		o.closeReader(e)
	}
}

// writer returns the shared writer of an arena path, opening it (and
// creating the file when create is set) if needed.
func (o *openFiles) writer(ctx context.Context, xp string, a Arena, p realize.Path, create bool) (*writerEntry, error) {
	if e := o.openWriter(xp); e != nil {
		return e, nil
	}
	size := int64(0)
	if !create {
		n, err := a.Stat(ctx, p)
		if err != nil {
			return nil, err
		}
		size = n.Meta.Size
	}
	wf, err := a.OpenWrite(ctx, p, create, false)
	if err != nil {
		return nil, err
	}
	if create {
		if n, err := a.Stat(ctx, p); err == nil {
			size = n.Meta.Size
		}
	}
	e := &writerEntry{xp: xp, wf: wf, size: size, mtime: time.Now().UnixNano(), refs: 1, last: time.Now()}
	o.mu.Lock()
	if old := o.writers[xp]; old != nil { // opened meanwhile: use that one
		old.refs++
		o.mu.Unlock()
		if err := wf.Close(); err != nil {
			o.log.Debug("nfs: close writer", "path", xp, "err", err)
		}
		return old, nil
	}
	o.writers[xp] = e
	if r := o.readers[xp]; r != nil {
		o.dropReaderLocked(r)
	}
	o.mu.Unlock()
	return e, nil
}

// openWriter returns the open writer of xp (with a reference), or nil.
func (o *openFiles) openWriter(xp string) *writerEntry {
	o.mu.Lock()
	defer o.mu.Unlock()
	if e := o.writers[xp]; e != nil {
		e.refs++
		return e
	}
	return nil
}

func (o *openFiles) release(e *writerEntry) {
	o.mu.Lock()
	defer o.mu.Unlock()
	e.refs--
	e.last = time.Now()
	if e.dead && e.refs == 0 {
		o.closeWriter(e)
	}
}

func (o *openFiles) closeWriter(e *writerEntry) {
	if err := e.wf.Close(); err != nil {
		o.log.Warn("nfs: closing a written file failed", "path", e.xp, "err", err)
	}
}

func (e *writerEntry) writeAt(p []byte, off int64) (int, error) {
	n, err := e.wf.WriteAt(p, off)
	e.mu.Lock()
	if end := off + int64(n); end > e.size {
		e.size = end
	}
	e.mtime = time.Now().UnixNano()
	e.mu.Unlock()
	return n, err
}

func (e *writerEntry) truncate(size int64) error {
	err := e.wf.Truncate(size)
	if err == nil {
		e.mu.Lock()
		e.size = size
		e.mtime = time.Now().UnixNano()
		e.mu.Unlock()
	}
	return err
}

// overlay shows the size and mtime of a file being written through NFS,
// whatever the Tree says before the writer is closed.
func (o *openFiles) overlay(xp string, m *realize.Meta) {
	o.mu.Lock()
	e := o.writers[xp]
	o.mu.Unlock()
	if e == nil || m.Kind != realize.KindFile {
		return
	}
	e.mu.Lock()
	m.Size, m.MTime = e.size, max(m.MTime, e.mtime)
	e.mu.Unlock()
}

// flush closes the writer of xp, if any (before a metadata change).
func (o *openFiles) flush(xp string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if e := o.writers[xp]; e != nil {
		o.dropWriterLocked(e)
	}
}

func (o *openFiles) dropWriterLocked(e *writerEntry) {
	if o.writers[e.xp] == e {
		delete(o.writers, e.xp)
	}
	e.dead = true
	if e.refs == 0 {
		o.closeWriter(e)
	}
}

// forget closes readers and writers of xp and of everything beneath it.
func (o *openFiles) forget(xp string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	under := func(p string) bool { return p == xp || strings.HasPrefix(p, xp+"/") }
	for p, e := range o.writers {
		if under(p) {
			o.dropWriterLocked(e)
		}
	}
	for p, e := range o.readers {
		if under(p) {
			o.dropReaderLocked(e)
		}
	}
}

// sweep closes what has been idle long enough; all closes everything.
func (o *openFiles) sweep(now time.Time, all bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, e := range o.writers {
		if all || e.refs == 0 && now.Sub(e.last) >= writerIdle {
			o.dropWriterLocked(e)
		}
	}
	for _, e := range o.readers {
		if all || e.refs == 0 && now.Sub(e.last) >= readerIdle {
			o.dropReaderLocked(e)
		}
	}
}
