package daemon

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watch follows the config file until ctx is done. It loads the file once
// at the start, so an edit made between the CLI's load and this watch is
// not missed.
func (s *configSource) watch(ctx context.Context) {
	names := watchedNames(s.start.File)
	events, errs, stop := s.notifier(names)
	defer stop()
	poll := time.NewTicker(s.poll)
	defer poll.Stop()
	settle := time.NewTimer(0)
	defer settle.Stop()
	seen := statFile(s.start.File)
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				events = nil
			} else if names[filepath.Clean(ev.Name)] {
				settle.Reset(s.debounce)
			}
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			s.log.Warn("config file watch error, reloading to be safe", "err", err)
			settle.Reset(s.debounce)
		case <-poll.C:
			if !statFile(s.start.File).same(seen) {
				settle.Reset(s.debounce)
			}
		case <-settle.C:
			seen = statFile(s.start.File)
			s.reload()
		}
	}
}

// watchedNames is the config file's path and, if it is a symlink, its
// target's: an edit of either is a change.
func watchedNames(file string) map[string]bool {
	names := map[string]bool{filepath.Clean(file): true}
	if t, err := filepath.EvalSymlinks(file); err == nil {
		names[filepath.Clean(t)] = true
	}
	return names
}

// notifier watches the directories holding names: editors save by writing
// a new file and renaming it over the old one, which a watch on the file
// itself would not survive. Without fsnotify, nil channels: the poll alone.
func (s *configSource) notifier(names map[string]bool) (<-chan fsnotify.Event, <-chan error, func()) {
	if !s.notify {
		return nil, nil, func() {}
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		s.log.Warn("config file not watched, polling it", "err", err, "every", s.poll)
		return nil, nil, func() {}
	}
	for n := range names {
		if err := w.Add(filepath.Dir(n)); err != nil {
			s.log.Warn("config directory not watched, polling it", "dir", filepath.Dir(n), "err", err, "every", s.poll)
		}
	}
	return w.Events, w.Errors, func() { w.Close() }
}

// fileState is what the poll compares: the file (inode), size and mtime.
type fileState struct {
	fi os.FileInfo // nil: missing or unreadable
}

func statFile(path string) fileState {
	fi, err := os.Stat(path)
	if err != nil {
		return fileState{}
	}
	return fileState{fi: fi}
}

func (a fileState) same(b fileState) bool {
	if a.fi == nil || b.fi == nil {
		return a.fi == nil && b.fi == nil
	}
	return os.SameFile(a.fi, b.fi) && a.fi.Size() == b.fi.Size() && a.fi.ModTime().Equal(b.fi.ModTime())
}
