package daemon

import (
	"context"
	"sync"
	"time"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/history"
	"github.com/realizefs/realize/household"
	"github.com/realizefs/realize/internal/config"
	"github.com/realizefs/realize/real"
)

// arenas is the set of running arena indexers.
type arenas struct {
	list   []*real.Arena
	failed map[realize.ArenaName]error // configured but not running, and why
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startArenas starts an indexer for every configured arena. It returns at
// once: the initial scans run in the indexers' goroutines, so the control
// socket answers (and status shows progress) while they run. An arena whose
// directory is missing is reported in status, not fatal: the others still
// work.
func startArenas(ctx context.Context, d *Daemon) (*arenas, error) {
	ctx, cancel := context.WithCancel(ctx)
	as := &arenas{failed: map[realize.ArenaName]error{}, cancel: cancel}
	hasher := real.NewHasher()
	d.hist = history.New(d.id.ID(), d.id, d.clock)
	log := d.hist
	for _, ac := range d.cfg.Arenas {
		a, err := real.NewArena(real.ArenaOptions{
			Name: ac.Name, Root: ac.Dir, DB: d.db, Log: log, Self: d.id.ID(),
			Hasher: hasher, Workers: d.cfg.Scan.HashWorkers,
			Rescan: d.cfg.Scan.Rescan, Debounce: d.cfg.Scan.Debounce,
			Exclude: []string{d.cfg.Data}, Logger: d.log, Clock: d.clock,
			DeleteGuard: d.deleteGuard(ac.Name), Settle: deleteSettle,
			Observer: &d.follow,
		})
		if err != nil {
			d.log.Error("arena not started", "arena", string(ac.Name), "err", err)
			as.failed[ac.Name] = err
			continue
		}
		as.list = append(as.list, a)
		as.wg.Add(1)
		go func() {
			defer as.wg.Done()
			if err := a.Run(ctx); err != nil {
				d.log.Error("arena stopped", "arena", string(a.Name()), "err", err)
			}
		}()
	}
	return as, nil
}

// get returns the running indexer of an arena.
func (as *arenas) get(name realize.ArenaName) *real.Arena {
	for _, a := range as.list {
		if a.Name() == name {
			return a
		}
	}
	return nil
}

// stop stops every indexer and waits for them until ctx is done. A scan
// interrupted here loses nothing: what it had not committed is found again
// by the next start's scan.
func (as *arenas) stop(ctx context.Context) error {
	as.cancel()
	done := make(chan struct{})
	go func() { as.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

var _ realize.Signer = (*household.Identity)(nil)

// deleteSettle is how long local deletions wait for more before the delete
// guard judges them together (real/guard_settle.go): a large rm -rf
// arrives as a batch per second, with gaps well under this
// (docs/decisions/0017-delete-guard.md has the measurement).
const deleteSettle = 2 * time.Second

// deleteGuard returns an arena's delete_guard as the config in force says
// (it applies live).
func (d *Daemon) deleteGuard(name realize.ArenaName) func() float64 {
	return func() float64 {
		if ac, ok := d.config().Arena(name); ok {
			return ac.DeleteGuard
		}
		return config.DefaultDeleteGuard
	}
}
