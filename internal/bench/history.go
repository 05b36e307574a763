package bench

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/consensus"
	"github.com/realizefs/realize/history"
	"github.com/realizefs/realize/internal/store"
	"github.com/realizefs/realize/real"
	bolt "go.etcd.io/bbolt"
)

// benchHistory: how big a peer's history gets after o.HistoryChanges
// changes (creates, edits, deletes over a working set of files), and what
// is left after trimming (every change acknowledged by the one other
// peer, no audit retention) and compaction — against a fresh peer that
// indexes the same final tree (the bound trimming aims at). It also
// measures how long readers and writers waited during the compaction.
func benchHistory(ctx context.Context, o Options) ([]Row, error) {
	if o.HistoryChanges <= 0 {
		return nil, nil
	}
	var runs []historyRun
	for i := 0; i < o.Runs; i++ {
		r, err := historyOnce(ctx, o)
		if err != nil {
			return nil, err
		}
		runs = append(runs, r)
	}
	pick := func(f func(historyRun) float64) float64 {
		var xs []float64
		for _, r := range runs {
			xs = append(xs, f(r))
		}
		return median(xs)
	}
	n := fmt.Sprintf("%dk changes", o.HistoryChanges/1000)
	fresh := pick(func(r historyRun) float64 { return r.freshMB })
	trimmed := pick(func(r historyRun) float64 { return r.compactedMB })
	return []Row{
		{Name: "history: entries after " + n, Value: pick(func(r historyRun) float64 { return float64(r.entries) }), Unit: "entries"},
		{Name: "history: DB size after " + n, Value: pick(func(r historyRun) float64 { return r.beforeMB }), Unit: "MB"},
		{Name: "history: entries kept after trimming", Value: pick(func(r historyRun) float64 { return float64(r.kept) }), Unit: "entries",
			Goal: "1 (the head)", Met: met(pick(func(r historyRun) float64 { return float64(r.kept) }) <= 1)},
		{Name: "history: tombstones kept after trimming", Value: pick(func(r historyRun) float64 { return float64(r.tombstones) }), Unit: "records",
			Goal: "0", Met: met(pick(func(r historyRun) float64 { return float64(r.tombstones) }) == 0)},
		{Name: "history: trimming time", Value: pick(func(r historyRun) float64 { return r.trimSec }), Unit: "s"},
		{Name: "history: DB size after trimming + compaction", Value: trimmed, Unit: "MB",
			Baseline: "fresh index of the same tree", Ratio: trimmed / fresh, Goal: "<= 1.5x", Met: met(trimmed <= 1.5*fresh)},
		{Name: "compaction: writers held", Value: pick(func(r historyRun) float64 { return r.writersMs }), Unit: "ms"},
		{Name: "compaction: longest read meanwhile", Value: pick(func(r historyRun) float64 { return r.readMaxMs }), Unit: "ms"},
	}, nil
}

type historyRun struct {
	entries, kept, tombstones      int
	beforeMB, compactedMB, freshMB float64
	trimSec, writersMs, readMaxMs  float64
}

// historyOnce runs the changes on a fresh peer, trims, compacts, and
// indexes the final tree on another fresh peer.
func historyOnce(ctx context.Context, o Options) (historyRun, error) {
	var r historyRun
	root, err := freshDir(o, "history-tree")
	if err != nil {
		return r, err
	}
	ix, err := newIndexer(ctx, o, root)
	if err != nil {
		return r, err
	}
	defer ix.db.Close()
	if err := churn(ctx, ix.arena, root, o.HistoryChanges); err != nil {
		return r, err
	}
	s := benchSigner{ed25519.NewKeyFromSeed(make([]byte, 32))}
	log := history.New(s.ID(), s, nil)
	other := realize.PeerID{0xbe}
	err = ix.db.Update(func(tx *bolt.Tx) error {
		head, err := log.Head(tx, "bench", s.ID())
		if err == nil {
			r.entries = int(head.Seq)
			err = log.SetAck(tx, "bench", other, s.ID(), head.Seq) // the other peer has it all
		}
		if err == nil {
			err = log.Heard(tx, other)
		}
		return err
	})
	if err != nil {
		return r, err
	}
	if r.beforeMB, err = fileMB(ix.db); err != nil {
		return r, err
	}
	start := time.Now()
	t := &consensus.Trimmer{DB: ix.db, Log: log, Self: s.ID(), Arena: ix.arena, InactiveAfter: 30 * 24 * time.Hour,
		Peers: func() []realize.PeerID { return []realize.PeerID{other} }}
	if _, err := t.Trim(ctx); err != nil {
		return r, err
	}
	r.trimSec = time.Since(start).Seconds()
	if r.kept, r.tombstones, err = leftovers(ix.db, log, s.ID()); err != nil {
		return r, err
	}
	st, readMax, err := compactWhileReading(ctx, ix.db)
	if err != nil {
		return r, err
	}
	r.compactedMB, r.writersMs, r.readMaxMs = float64(st.After)/1e6, float64(st.WritersHeld.Microseconds())/1e3, float64(readMax.Microseconds())/1e3
	fresh, err := newIndexer(ctx, o, root)
	if err != nil {
		return r, err
	}
	defer fresh.db.Close()
	if err := fresh.arena.ScanAll(ctx); err != nil {
		return r, err
	}
	if _, err := fresh.db.Compact(ctx); err != nil { // the same measure: live data only
		return r, err
	}
	r.freshMB, err = fileMB(fresh.db)
	return r, err
}

// churn makes n changes to a working set of files, recorded 500 at a
// time: a third of the changes to an existing file delete it, the others
// rewrite it; a missing file is created.
func churn(ctx context.Context, a *real.Arena, root string, n int) error {
	const working, batch = 2000, 500
	if err := os.MkdirAll(filepath.Join(root, "w"), 0o755); err != nil {
		return err
	}
	var paths []realize.Path
	var dirs []realize.Path // a deletion is found by listing the directory
	for k := 0; k < n; k++ {
		rel := fmt.Sprintf("w/f%04d", (k*7919)%working)
		abs := filepath.Join(root, rel)
		_, err := os.Lstat(abs)
		switch {
		case err == nil && k%3 == 0:
			err = os.Remove(abs)
			dirs = []realize.Path{"w"}
		default:
			err = os.WriteFile(abs, []byte(fmt.Sprintf("change %d", k)), 0o644)
		}
		if err != nil {
			return err
		}
		paths = append(paths, realize.Path(rel))
		if len(paths) == batch || k == n-1 {
			if err := a.ScanPaths(ctx, dirs, paths); err != nil {
				return err
			}
			paths, dirs = paths[:0], nil
		}
	}
	return nil
}

// leftovers counts the entries and tombstones trimming left.
func leftovers(db *store.DB, log *history.Log, self realize.PeerID) (entries, tombstones int, err error) {
	err = db.View(func(tx *bolt.Tx) error {
		first, head, err := log.Retained(tx, "bench", self)
		if err != nil {
			return err
		}
		entries = int(head + 1 - first)
		ix, err := real.OpenIndex(tx, "bench")
		if err != nil {
			return err
		}
		return ix.Walk("", func(_ realize.Path, r *real.Record) error {
			if r.Deleted {
				tombstones++
			}
			return nil
		})
	})
	return entries, tombstones, err
}

// compactWhileReading compacts db while a reader loops, and returns the
// longest a read took meanwhile.
func compactWhileReading(ctx context.Context, db *store.DB) (store.CompactStats, time.Duration, error) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var longest time.Duration
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			start := time.Now()
			db.View(func(tx *bolt.Tx) error {
				_, err := real.OpenIndex(tx, "bench")
				return err
			})
			longest = max(longest, time.Since(start))
		}
	}()
	st, err := db.Compact(ctx)
	close(stop)
	wg.Wait()
	return st, longest, err
}

func fileMB(db *store.DB) (float64, error) {
	u, err := db.Usage()
	return float64(u.Size) / 1e6, err
}
