package real

import (
	"context"
	"os"
	"time"

	"github.com/realizefs/realize"
)

// Writes through an overlay mount are invisible to the real directory's
// watcher: overlayfs opens the real file under the mount's path, and the
// kernel reports the modification there, not on the real directory (an
// append through the mount to a real file raised no event the indexer
// heard; it was only found by the next full rescan). So while an overlay
// is mounted over the real directory, a second watcher follows the mount
// too, over the directories that are real here (the others hold only
// unreal files, which a write first copies up: the real directory's
// watcher sees that).

// mountCheck is how often the arena looks for an overlay mounted over its
// real directory (a read of /proc/self/mountinfo).
const mountCheck = time.Second

// mountWatch is the watcher on the overlay mount, if any.
type mountWatch struct {
	mnt      string   // what is watched ("" = nothing)
	w        *Watcher // nil while starting or when nothing is mounted
	starting bool
	started  chan startedWatch
}

type startedWatch struct {
	mnt string
	w   *Watcher
	err error
}

func newMountWatch() *mountWatch { return &mountWatch{started: make(chan startedWatch, 1)} }

// batches is the mount watcher's channel (nil when there is none).
func (m *mountWatch) batches() <-chan Batch {
	if m.w == nil {
		return nil
	}
	return m.w.Batches()
}

// check starts or stops the mount watcher when the mount changed. Watching
// walks the mount (an NFS listing per real directory), so it starts in its
// own goroutine and arrives on m.started.
func (m *mountWatch) check(ctx context.Context, a *Arena) {
	if m.starting {
		return
	}
	mnt := overlayOver(a.root)
	if mnt == m.mnt {
		return
	}
	m.stop()
	m.mnt = mnt
	if mnt == "" {
		return
	}
	m.starting = true
	go func() {
		w, err := Watch(ctx, mnt, WatchOptions{Debounce: a.debounce, Skip: a.skipInMount, Logger: a.logger})
		m.started <- startedWatch{mnt: mnt, w: w, err: err}
	}()
}

// arrived takes the watcher a check started.
func (m *mountWatch) arrived(s startedWatch, a *Arena) {
	m.starting = false
	switch {
	case s.err != nil:
		a.logger.Warn("overlay mount not watched; writes through it are found by rescans", "mount", s.mnt, "err", s.err)
	case s.mnt != m.mnt:
		s.w.Close() // unmounted meanwhile
	default:
		m.w = s.w
		a.logger.Info("watching the overlay mount too", "mount", s.mnt)
	}
}

func (m *mountWatch) stop() {
	if m.w != nil {
		m.w.Close()
		m.w = nil
	}
}

// skipInMount skips in the mount what the real directory's watcher skips,
// and the directories that are not real here.
func (a *Arena) skipInMount(p realize.Path, isDir bool) bool {
	if a.ignored(p, isDir) || isDir && a.isOwnDataPath(p) {
		return true
	}
	if !isDir {
		return false
	}
	info, err := os.Lstat(a.abs(p))
	return err != nil || !info.IsDir()
}
