package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/household"
	"github.com/realizefs/realize/internal/config"
	"github.com/realizefs/realize/internal/control"
	"github.com/urfave/cli/v3"
)

// requestTimeout bounds a request to the daemon that should be quick.
const requestTimeout = 30 * time.Second

func statusCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "show the daemon, its arenas, peers, cache and transfers, or one path",
		ArgsUsage: "[PATH]",
		Description: "Without PATH: the daemon, its arenas, peers and cache, and the transfers\n" +
			"running now (files fetched by replication, pins, cache fetches for reads), each\n" +
			"with a progress bar. --watch redraws it every second until Ctrl-C (with --json:\n" +
			"one status object per line per second). With PATH (inside an arena's directory\n" +
			"or a mount, or ARENA:PATH): its mark (pinned or not, and where from), its state\n" +
			"here (real, cached with how much, remote) and the peers that hold it. If the\n" +
			"daemon is not running, says so and exits 1; with --json (no PATH) it still\n" +
			"prints a status object, with daemon.running false.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "watch", Aliases: []string{"w"}, Usage: "redraw every second until interrupted (not with PATH)"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.Args().Len() > 1 {
				return usagef("status: want at most one PATH, got %d arguments", cmd.Args().Len())
			}
			watch := cmd.Bool("watch")
			if watch && cmd.Args().Present() {
				return usagef("status: --watch shows the whole status, not one PATH")
			}
			cfg, err := loadConfig(cmd, e)
			if err != nil {
				return err
			}
			p := newPrinter(cmd, e)
			c := control.NewClient(control.SocketPath(cfg.Data))
			defer c.Close()
			if arg := cmd.Args().First(); arg != "" {
				ctx, cancel := context.WithTimeout(ctx, requestTimeout)
				defer cancel()
				return pathStatus(ctx, c, cfg, p, arg)
			}
			if watch {
				return watchStatus(ctx, c, cfg, p, e)
			}
			return showStatus(ctx, c, cfg, p, e, nil)
		},
	}
}

// showStatus asks the daemon for its status once and prints it. frame, if
// set, writes the text form (a redraw) instead of the printer.
func showStatus(ctx context.Context, c *control.Client, cfg *config.Config, p *printer, e *env, frame func(string)) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	rep, err := c.Status(ctx)
	if realize.KindOf(err) == realize.Unavailable {
		if p.json {
			p.JSON(downReport(cfg))
		}
		return err
	}
	if err != nil {
		return err
	}
	if p.json {
		return p.JSON(rep)
	}
	if frame == nil {
		printStatus(p, rep, e.now())
		return nil
	}
	var b strings.Builder
	printStatus(&printer{w: &b}, rep, e.now())
	frame(b.String())
	return nil
}

// watchEvery is how often --watch redraws.
const watchEvery = time.Second

// watchStatus shows the status every watchEvery until ctx is done or the
// user interrupts (exit 0). On a terminal each frame replaces the last;
// elsewhere frames follow each other, separated by a blank line.
func watchStatus(ctx context.Context, c *control.Client, cfg *config.Config, p *printer, e *env) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	tty := false
	if f, ok := e.stdout.(*os.File); ok {
		tty = isTerminal(f)
	}
	first := true
	frame := func(s string) {
		switch {
		case tty:
			p.Printf("\x1b[H\x1b[2J%s", s) // home, clear, draw
		case first:
			p.Printf("%s", s)
		default:
			p.Printf("\n%s", s)
		}
		first = false
	}
	t := time.NewTicker(watchEvery)
	defer t.Stop()
	for {
		if err := showStatus(ctx, c, cfg, p, e, frame); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// downReport is the status of a peer whose daemon is not running: what the
// config and the key say.
func downReport(cfg *config.Config) *control.StatusReport {
	rep := &control.StatusReport{Daemon: control.DaemonStatus{Name: cfg.Name, DataDir: cfg.Data}, Arenas: []control.ArenaStatus{},
		Transfers: []control.TransferStatus{}}
	if id, err := household.LoadIdentity(household.KeyPath(cfg.Data)); err == nil {
		rep.Daemon.Peer = id.ID()
	}
	for _, a := range cfg.Arenas {
		rep.Arenas = append(rep.Arenas, control.ArenaStatus{Name: a.Name, Dir: a.Dir})
	}
	return rep
}

func printStatus(p *printer, rep *control.StatusReport, now time.Time) {
	d := rep.Daemon
	p.Printf("peer     %s  %s\n", d.Name, d.Peer)
	p.Printf("daemon   running, pid %d, up %s", d.PID, since(now, d.Started))
	if d.Version != "" {
		p.Printf(", version %s", d.Version)
	}
	p.Printf("\ndata     %s\n", d.DataDir)
	if len(rep.Arenas) == 0 {
		p.Printf("\nno arenas (add an [[arena]] to the config)\n")
	}
	for _, a := range rep.Arenas {
		printArena(p, &a, now)
	}
	printPeerStatus(p, rep.Peers, now)
	printCache(p, rep)
	printTransfers(p, rep.Transfers)
}

// printCache shows the cache of unreal bytes and the NFS server.
func printCache(p *printer, rep *control.StatusReport) {
	if c := rep.Cache; c != nil {
		p.Printf("\ncache    %s of %s used, %s fetched for reads since start\n",
			humanBytes(c.UsedBytes), humanBytes(c.LimitBytes), humanBytes(c.FetchedBytes))
	}
	switch {
	case rep.NFS != "":
		p.Printf("nfs      serving on %s (realize mount DIR)\n", rep.NFS)
	case rep.NFSError != "":
		p.Printf("nfs      not serving: %s\n", rep.NFSError)
	}
	switch {
	case rep.Metrics != "":
		p.Printf("metrics  serving on http://%s/metrics\n", rep.Metrics)
	case rep.MetricsError != "":
		p.Printf("metrics  not serving: %s\n", rep.MetricsError)
	}
}

// printPeerStatus lists the household as this daemon sees it.
func printPeerStatus(p *printer, peers []control.PeerStatus, now time.Time) {
	if len(peers) == 0 {
		p.Printf("\nno peers (add one with: realize peer add NAME KEY [HOST:PORT])\n")
		return
	}
	p.Printf("\npeers\n")
	for _, ps := range peers {
		addr := ps.Address
		if addr == "" {
			addr = "(deaf)"
		}
		state := "not connected"
		switch {
		case ps.Connected:
			state = "connected " + since(now, ps.Since) + " via " + ps.RemoteAddr
			if ps.Lag > 0 {
				state += fmt.Sprintf(", we lack %d of its entries", ps.Lag)
			}
			if ps.Behind > 0 {
				state += fmt.Sprintf(", it lacks %d of ours", ps.Behind)
			}
		case !ps.LastSeen.IsZero():
			state += ", last seen " + since(now, ps.LastSeen) + " ago"
		case !ps.Heard.IsZero():
			state += ", last heard from " + since(now, ps.Heard) + " ago"
		}
		if ps.Inactive {
			state += "; inactive: no longer holds back history trimming"
		}
		p.Printf("  %-12s %s  %-21s %s\n", ps.Name, ps.Peer.Short(), addr, state)
		if !ps.Connected && ps.LastError != "" {
			p.Printf("  %-12s last error: %s\n", "", ps.LastError)
		}
	}
}

func printArena(p *printer, a *control.ArenaStatus, now time.Time) {
	p.Printf("\narena %s  %s\n", a.Name, a.Dir)
	p.Printf("  %d files (%d unreal here), %d dirs, %d symlinks, %s\n", a.Files, a.UnrealFiles, a.Dirs, a.Symlinks, humanBytes(a.Bytes))
	mark := "unpinned: files from other peers are fetched on demand"
	if a.Pinned {
		mark = "pinned: every file is kept real here"
	}
	p.Printf("  default  %s\n", mark)
	if a.PendingHash > 0 {
		p.Printf("  hashing  %d files pending (%s)\n", a.PendingHash, humanBytes(a.PendingBytes))
	}
	scan := "never"
	if !a.LastScan.IsZero() {
		scan = a.LastScan.Local().Format(time.DateTime) + " (" + since(now, a.LastScan) + " ago)"
	}
	if a.Scanning {
		scan += ", scanning now"
	}
	p.Printf("  scan     last %s\n", scan)
	watch := "yes"
	if !a.Watching {
		watch = "no (periodic rescans only)"
	}
	p.Printf("  watching %s\n", watch)
	p.Printf("  history  seq %d\n", a.HistorySeq)
	printHeld(p, a, now)
	if len(a.Skipped) > 0 {
		p.Printf("  skipped  %d paths:\n", len(a.Skipped))
		for _, s := range a.Skipped {
			p.Printf("    %s: %s\n", quoteOSPath(s.Path), s.Reason)
		}
	}
}

// quoteOSPath renders a path from the disk, which may not be valid UTF-8.
func quoteOSPath(s string) string {
	if !utf8.ValidString(s) {
		return strconv.Quote(s)
	}
	return realize.Path(s).Quote()
}

// since renders the time from t to now, rounded for people.
func since(now, t time.Time) string {
	if t.IsZero() {
		return "?"
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < 24*time.Hour:
		return d.Round(time.Minute).String()
	}
	return d.Round(time.Hour).String()
}
