// Package bench measures Realize against baselines run in the same
// invocation on the same data, and prints a table of figures and ratios.
// It is what `make bench` runs (through cmd/realize-bench). Each figure is
// the median of several runs, because these machines are noisy; each run
// gets its own fresh directory (creating files right after deleting many is
// slow on this disk).
package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Options size the benchmarks.
type Options struct {
	Dir         string // scratch directory (fresh subdirectories per run)
	Runs        int    // runs per figure (median reported)
	IndexFiles  int    // files in the index-throughput tree
	IndexBytes  int64  // bytes in it, spread evenly
	RescanFiles int    // files in the rescan / heap tree
	SyncBytes   int64  // size of the big file synced between two daemons; 0 = no sync stage
	SyncFiles   int    // small files in the synced tree
	SyncEdits   int    // latency samples per run
	NFSBytes    int64  // size of the unreal file read through NFS; 0 = no nfs stage
	// HistoryChanges is how many changes the history stage records before
	// trimming; 0 = no history stage.
	HistoryChanges int
	MountBytes     int64  // bytes of the real file read and written through realize mount in UML; 0 = no mount stage
	ScaleFiles     int    // files in the scale tree
	Scale          bool   // include the scale stage in a run of all stages
	Only           string // run only this stage (rescan, index, sync, nfs, history, mount, scale); "" = all
	Out            io.Writer
}

// Row is one line of the result table.
type Row struct {
	Name     string
	Value    float64
	Unit     string
	Baseline string  // what the ratio is against, if any
	Ratio    float64 // Value / baseline (or baseline / Value for times); 0 = none
	Goal     string
	Met      string // "yes", "no" or ""
}

// Run runs every benchmark (or only the stage o.Only) and prints the table.
func Run(ctx context.Context, o Options) ([]Row, error) {
	stages := []struct {
		name string
		run  func(context.Context, Options) ([]Row, error)
	}{{"rescan", benchRescan}, {"index", benchIndex}, {"sync", benchSync}, {"nfs", benchNFS}, {"history", benchHistory}, {"mount", benchMount}, {"scale", benchScale}}
	var rows []Row
	ran := false
	for _, s := range stages {
		if o.Only != "" && o.Only != s.name || o.Only == "" && s.name == "scale" && !o.Scale {
			continue
		}
		ran = true
		r, err := s.run(ctx, o)
		if err != nil {
			return rows, fmt.Errorf("%s: %w", s.name, err)
		}
		rows = append(rows, r...)
	}
	if !ran {
		return nil, fmt.Errorf("no stage %q (rescan, index, sync, nfs, history, mount, scale)", o.Only)
	}
	Print(o.Out, rows)
	return rows, nil
}

// Print writes rows as an aligned table.
func Print(w io.Writer, rows []Row) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "benchmark\tvalue\tunit\tbaseline\tratio\tgoal\tmet")
	for _, r := range rows {
		ratio := ""
		if r.Ratio != 0 {
			ratio = fmt.Sprintf("%.2fx", r.Ratio)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, format(r.Value), r.Unit, r.Baseline, ratio, r.Goal, r.Met)
	}
	tw.Flush()
}

func format(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.3f", v)
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func met(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

// timeIt runs f n times and returns the median duration in seconds.
func timeIt(n int, f func(run int) error) (float64, error) {
	var ds []float64
	for i := 0; i < n; i++ {
		start := time.Now()
		if err := f(i); err != nil {
			return 0, err
		}
		ds = append(ds, time.Since(start).Seconds())
	}
	return median(ds), nil
}

// freshDir returns a new, empty directory under o.Dir.
func freshDir(o Options, name string) (string, error) {
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return "", err
	}
	return os.MkdirTemp(o.Dir, strings.ReplaceAll(name, "/", "-")+"-")
}
