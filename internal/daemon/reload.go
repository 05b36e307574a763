package daemon

import (
	"context"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/realizefs/realize/internal/config"
)

// How the config file is followed: fsnotify reports most changes at once;
// the poll catches what it misses (a watch that failed, a file behind a
// symlink elsewhere, a directory replaced). Editors write in bursts
// (truncate, write, rename), hence the debounce.
const (
	configPoll     = 3 * time.Second
	configDebounce = 250 * time.Millisecond
)

// configSource is the config in force, following the config file so that
// `realize peer add` (or any edit) reaches a running daemon without a
// restart (SPEC §8). Only some parts apply live: the peers, each arena's
// peers list (so restricting an arena takes effect at once) and
// delete_guard, the log level and the history settings. Everything else
// (arenas themselves, data, listen, nfs, …) keeps
// its startup value, and a change to it is logged once as needing a
// restart. A file that fails to load is logged and the running config
// kept: a typo never takes a peer out of the household.
type configSource struct {
	start    *config.Config // what the daemon started with
	log      *slog.Logger
	level    *slog.LevelVar // the logger's level, set live; nil: fixed by a flag
	poll     time.Duration
	debounce time.Duration
	notify   bool // use fsnotify; tests turn it off to show the poll works alone

	cur  atomic.Pointer[config.Config] // read on every handshake: no lock
	mu   sync.Mutex                    // guards subs and sends to them
	subs map[chan *config.Config]struct{}

	// Owned by the goroutine running watch.
	told    map[string]bool // fields already reported as needing a restart
	lastErr string          // the load error last logged, to log each once
}

// config returns the config in force now (see configSource). d.cfg stays
// the startup config, which is what the parts that do not reload run on.
func (d *Daemon) config() *config.Config {
	if d.conf == nil {
		return d.cfg
	}
	return d.conf.Current()
}

// followConfig makes d.conf and, when the config came from a file, follows
// that file until ctx is done or the daemon stops.
func (d *Daemon) followConfig(ctx context.Context, stack *cleanup, level *slog.LevelVar) {
	d.conf = newConfigSource(d.cfg, d.log, level)
	if d.cfg.File == "" {
		return // built in memory (tests): nothing to follow
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.conf.watch(ctx)
	}()
	stack.push("stop config watcher", func(context.Context) error {
		cancel()
		<-done
		return nil
	})
}

func newConfigSource(cfg *config.Config, log *slog.Logger, level *slog.LevelVar) *configSource {
	s := &configSource{start: cfg, log: log, level: level, poll: configPoll, debounce: configDebounce,
		notify: true, subs: map[chan *config.Config]struct{}{}, told: map[string]bool{}}
	s.cur.Store(cfg)
	return s
}

// Current returns the config in force. It is shared: do not modify it.
func (s *configSource) Current() *config.Config { return s.cur.Load() }

// Peers returns the household as configured now, for the transport to
// check a connecting key against on each handshake. Do not modify it.
func (s *configSource) Peers() []config.Peer { return s.Current().Peers }

// Subscribe returns a channel that holds the current config at once, then
// each new one. A slow reader misses intermediate configs, never the
// latest. The channel is closed when ctx is done.
func (s *configSource) Subscribe(ctx context.Context) <-chan *config.Config {
	ch := make(chan *config.Config, 1)
	s.mu.Lock()
	ch <- s.Current()
	s.subs[ch] = struct{}{}
	s.mu.Unlock()
	context.AfterFunc(ctx, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.subs, ch)
		close(ch)
	})
	return ch
}

// reload loads the file and applies it, or logs why it cannot.
func (s *configSource) reload() {
	next, err := config.Load(s.start.File)
	if err != nil {
		if msg := err.Error(); msg != s.lastErr {
			s.lastErr = msg
			s.log.Error("config not reloaded, the daemon keeps the running one", "err", err)
		}
		return
	}
	s.lastErr = ""
	s.apply(next)
}

// apply makes next's live parts current and tells subscribers, if that
// changes anything.
func (s *configSource) apply(next *config.Config) {
	s.tellRestart(restartFields(s.start, next))
	eff := s.effective(next)
	s.mu.Lock()
	defer s.mu.Unlock()
	if reflect.DeepEqual(eff, s.Current()) {
		return
	}
	s.cur.Store(eff)
	if s.level != nil {
		s.level.Set(eff.Log.Level)
	}
	for ch := range s.subs {
		select { // the buffer holds an older config at most: replace it
		case <-ch:
		default:
		}
		ch <- eff
	}
	s.log.Info("config reloaded", "file", eff.File, "peers", len(eff.Peers), "log_level", eff.Log.Level.String())
}

// effective is the startup config with next's live parts.
func (s *configSource) effective(next *config.Config) *config.Config {
	eff := *s.start
	eff.Peers = next.Peers
	eff.History = next.History // read by each trimming pass
	if s.level != nil {
		eff.Log.Level = next.Log.Level
	}
	eff.Arenas = nil // a copy: the startup config is shared
	for _, a := range s.start.Arenas {
		if na, ok := next.Arena(a.Name); ok {
			a.Peers, a.DeleteGuard = na.Peers, na.DeleteGuard
		}
		eff.Arenas = append(eff.Arenas, a)
	}
	return &eff
}

// tellRestart logs each field that differs from the running value once,
// and forgets a field that went back, so a later change is told again.
func (s *configSource) tellRestart(fields []string) {
	now := map[string]bool{}
	for _, f := range fields {
		now[f] = true
		if !s.told[f] {
			s.log.Warn("restart the daemon to apply this config change", "field", f)
		}
	}
	s.told = now
}
