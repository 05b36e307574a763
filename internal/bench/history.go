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
	mb := pick(func(r historyRun) float64 { return r.beforeMB })
	readMax, readBase := pick(func(r historyRun) float64 { return r.fullReadMaxMs }), pick(func(r historyRun) float64 { return r.baseReadMaxMs })
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
		{Name: "compaction after trimming: writers held", Value: pick(func(r historyRun) float64 { return r.writersMs }), Unit: "ms"},
		{Name: "compaction after trimming: longest read meanwhile", Value: pick(func(r historyRun) float64 { return r.readMaxMs }), Unit: "ms"},
		{Name: fmt.Sprintf("compaction of all %.0f MB, a write every 100 ms: time", mb), Value: pick(func(r historyRun) float64 { return r.fullSec }), Unit: "s"},
		{Name: fmt.Sprintf("compaction of all %.0f MB, a write every 100 ms: copies", mb), Value: pick(func(r historyRun) float64 { return float64(r.fullCopies) }), Unit: "copies"},
		{Name: fmt.Sprintf("compaction of all %.0f MB, a write every 100 ms: put off (busy)", mb), Value: pick(func(r historyRun) float64 { return r.fullPutOff }), Unit: "yes=1"},
		{Name: fmt.Sprintf("compaction of all %.0f MB, a write every 100 ms: writers held", mb), Value: pick(func(r historyRun) float64 { return r.fullWritersMs }), Unit: "ms"},
		{Name: fmt.Sprintf("compaction of all %.0f MB, a write every 100 ms: longest read", mb), Value: readMax, Unit: "ms",
			Baseline: "same loops, no compaction", Ratio: readMax / readBase},
	}, nil
}

type historyRun struct {
	entries, kept, tombstones      int
	beforeMB, compactedMB, freshMB float64
	trimSec, writersMs, readMaxMs  float64
	// compacting before trimming (every byte live) with writes going on
	fullSec, fullWritersMs, fullReadMaxMs float64
	fullCopies                            int
	baseReadMaxMs                         float64 // the same loops as long, without compaction
	fullPutOff                            float64 // 1: put off (store.Compact said busy)
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
	full, fullRead, err := compactWhileReading(ctx, ix.db, 100*time.Millisecond)
	switch {
	case realize.KindOf(err) == realize.Busy:
		r.fullPutOff = 1 // too much live data to hold writers back for its copy
	case err != nil:
		return r, err
	}
	r.fullSec, r.fullCopies = time.Since(start).Seconds(), full.Copies
	r.fullWritersMs, r.fullReadMaxMs = ms(full.WritersHeld), ms(fullRead)
	_, baseRead, err := whileReading(ix.db, 100*time.Millisecond, func() (store.CompactStats, error) {
		time.Sleep(time.Since(start))
		return store.CompactStats{}, nil
	})
	if err != nil {
		return r, err
	}
	r.baseReadMaxMs = ms(baseRead)
	start = time.Now()
	t := &consensus.Trimmer{DB: ix.db, Log: log, Self: s.ID(), Arena: ix.arena, InactiveAfter: 30 * 24 * time.Hour,
		Peers: func() []realize.PeerID { return []realize.PeerID{other} }}
	if _, err := t.Trim(ctx); err != nil {
		return r, err
	}
	r.trimSec = time.Since(start).Seconds()
	if r.kept, r.tombstones, err = leftovers(ix.db, log, s.ID()); err != nil {
		return r, err
	}
	st, readMax, err := compactWhileReading(ctx, ix.db, 0)
	if err != nil {
		return r, err
	}
	r.compactedMB, r.writersMs, r.readMaxMs = float64(st.After)/1e6, ms(st.WritersHeld), ms(readMax)
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

// compactWhileReading compacts db while a reader loops and, if
// writeEvery is set, a writer commits that often; it returns the longest a
// read took meanwhile.
func compactWhileReading(ctx context.Context, db *store.DB, writeEvery time.Duration) (store.CompactStats, time.Duration, error) {
	return whileReading(db, writeEvery, func() (store.CompactStats, error) { return db.Compact(ctx) })
}

// whileReading runs f while the reader and writer loops of
// compactWhileReading run.
func whileReading(db *store.DB, writeEvery time.Duration, f func() (store.CompactStats, error)) (store.CompactStats, time.Duration, error) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var longest time.Duration
	wg.Add(2)
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
	go func() {
		defer wg.Done()
		for i := uint64(0); writeEvery > 0; i++ {
			select {
			case <-stop:
				return
			case <-time.After(writeEvery):
			}
			db.Update(func(tx *bolt.Tx) error {
				b, err := tx.CreateBucketIfNotExists([]byte("bench-writes"))
				if err == nil {
					err = b.Put(store.SeqKey(i), nil)
				}
				return err
			})
		}
	}()
	st, err := f()
	close(stop)
	wg.Wait()
	return st, longest, err
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }

func fileMB(db *store.DB) (float64, error) {
	u, err := db.Usage()
	return float64(u.Size) / 1e6, err
}
