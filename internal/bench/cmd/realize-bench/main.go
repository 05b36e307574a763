// Command realize-bench runs Realize's benchmarks and prints a table of
// figures and ratios against baselines measured in the same run.
// `make bench` runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"

	"github.com/realizefs/realize/internal/bench"
)

func main() {
	o := bench.Options{Out: os.Stdout}
	flag.StringVar(&o.Dir, "dir", "", "scratch directory (default: a new temporary directory, removed at the end)")
	flag.IntVar(&o.Runs, "runs", 3, "runs per figure; the median is reported")
	flag.IntVar(&o.IndexFiles, "index-files", 10000, "files in the indexing tree")
	flag.Int64Var(&o.IndexBytes, "index-bytes", 1<<30, "bytes in the indexing tree")
	flag.IntVar(&o.RescanFiles, "rescan-files", 100000, "files in the rescan / memory tree")
	flag.Int64Var(&o.SyncBytes, "sync-bytes", 1<<30, "size of the file synced between two daemons; 0 skips the sync stage")
	flag.IntVar(&o.SyncFiles, "sync-files", 10000, "small files in the synced tree")
	flag.IntVar(&o.SyncEdits, "sync-edits", 20, "propagation-latency samples per run")
	flag.Int64Var(&o.NFSBytes, "nfs-bytes", 1<<30, "size of the unreal file read through NFS; 0 skips the nfs stage")
	flag.IntVar(&o.HistoryChanges, "history-changes", 100000, "changes recorded before trimming in the history stage; 0 skips it")
	flag.Int64Var(&o.MountBytes, "mount-bytes", 256<<20, "size of the real file read and written through realize mount in user-mode Linux; 0 skips the mount stage")
	flag.IntVar(&o.ScaleFiles, "scale-files", 1_000_000, "files in the scale tree (kept under -dir and reused)")
	flag.BoolVar(&o.Scale, "scale", false, "include the scale stage (slow: it generates and indexes -scale-files files)")
	flag.StringVar(&o.Only, "only", "", "run only this stage: rescan, index, sync, nfs, history, mount or scale")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if o.Dir == "" {
		d, err := os.MkdirTemp("", "realize-bench-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer os.RemoveAll(d)
		o.Dir = d
	}
	if _, err := bench.Run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
