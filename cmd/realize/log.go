package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/internal/config"
	"github.com/realizefs/realize/internal/control"
	"github.com/urfave/cli/v3"
)

func logCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "log",
		Usage: "show the history: who changed what, when, from which machine",
		Description: "With --json, prints one JSON object per line (seq, time, peer, arena, op, path,\n" +
			"hash, size, …). --verify checks the hash chains and signed heads instead, and\n" +
			"exits 1 if any log fails. Works without a running daemon.\n" +
			"--since takes RFC 3339 (2026-01-02T15:04:05Z), a date (2026-01-02) or a duration\n" +
			"back from now (2h, 30m, 7d).",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "arena", Usage: "only this `ARENA`"},
			&cli.StringFlag{Name: "peer", Usage: "only the log of this `PEER` (name, key or key prefix)"},
			&cli.StringFlag{Name: "since", Usage: "only entries since `T`"},
			&cli.IntFlag{Name: "limit", Usage: "only the newest `N` entries"},
			&cli.BoolFlag{Name: "verify", Usage: "verify the logs instead of printing them"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if err := noArgs(cmd); err != nil {
				return err
			}
			q, err := logQuery(cmd, e.now())
			if err != nil {
				return err
			}
			cfg, err := loadConfig(cmd, e)
			if err != nil {
				return err
			}
			b, closeBackend, err := historyBackend(ctx, cfg)
			if err != nil {
				return err
			}
			defer closeBackend()
			p := newPrinter(cmd, e)
			if cmd.Bool("verify") {
				return verifyLogs(ctx, p, b, q)
			}
			return b.Log(ctx, q, func(r *control.LogRecord) error {
				if p.json {
					return p.JSON(r)
				}
				printRecord(p, r)
				return nil
			})
		},
	}
}

func logQuery(cmd *cli.Command, now time.Time) (control.LogQuery, error) {
	q := control.LogQuery{Peer: cmd.String("peer"), Limit: int(cmd.Int("limit"))}
	if q.Limit < 0 {
		return q, usagef("log: --limit %d: want a positive number", q.Limit)
	}
	if a := cmd.String("arena"); a != "" {
		name, err := realize.ParseArenaName(a)
		if err != nil {
			return q, usagef("log: --arena %q: not an arena name", a)
		}
		q.Arena = name
	}
	if s := cmd.String("since"); s != "" {
		t, err := parseSince(s, now)
		if err != nil {
			return q, usagef("log: --since %q: want RFC 3339 (2026-01-02T15:04:05Z), a date (2026-01-02) or a duration (2h, 7d)", s)
		}
		q.Since = t
	}
	return q, nil
}

// parseSince reads a point in time: RFC 3339, a local date, or a duration
// back from now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation(time.DateOnly, s, now.Location()); err == nil {
		return t, nil
	}
	d, err := config.ParseDuration(s)
	if err != nil {
		return time.Time{}, err
	}
	return now.Add(-d), nil
}

// historyBackend is the running daemon if there is one, else the database
// read directly.
func historyBackend(ctx context.Context, cfg *config.Config) (control.Backend, func(), error) {
	c := control.NewClient(control.SocketPath(cfg.Data))
	err := c.Ping(ctx)
	if err == nil {
		return c, c.Close, nil
	}
	c.Close()
	if realize.KindOf(err) != realize.Unavailable {
		return nil, nil, err
	}
	return offlineBackend(ctx, cfg)
}

// printRecord writes one entry on one line: time, peer, arena, op, path,
// size, hash.
func printRecord(p *printer, r *control.LogRecord) {
	who := r.Origin.Short()
	if r.Origin == r.Peer && r.PeerName != "" {
		who = r.PeerName
	}
	path := r.Path.Quote()
	if r.From != "" {
		path = r.From.Quote() + " -> " + path
	}
	if r.Kind == realize.KindSymlink.String() && r.Target != "" {
		path += " -> " + realize.Path(r.Target).Quote()
	}
	size, hash := "-", "-"
	if r.Size != nil {
		size = humanBytes(*r.Size)
	}
	if r.Hash != nil {
		hash = r.Hash.Short()
	}
	p.Printf("%s  %-8s  %s  %-7s  %s  %s  %s\n", r.Time.Local().Format(time.DateTime), who, r.Arena, r.Op, path, size, hash)
}

func verifyLogs(ctx context.Context, p *printer, b control.Backend, q control.LogQuery) error {
	rep, err := b.Verify(ctx, q)
	if err != nil {
		return err
	}
	if p.json {
		if err := p.JSON(rep); err != nil {
			return err
		}
	} else {
		printVerify(p, rep)
	}
	if rep.OK {
		return nil
	}
	bad := 0
	for _, l := range rep.Logs {
		if !l.OK {
			bad++
		}
	}
	return &realize.Error{Op: "verify history", Kind: realize.Corrupt,
		Err: fmt.Errorf("%d of %d logs failed verification", bad, len(rep.Logs))}
}

func printVerify(p *printer, rep *control.VerifyReport) {
	if len(rep.Logs) == 0 {
		p.Printf("no logs match\n")
	}
	for _, l := range rep.Logs {
		status := "ok  "
		if !l.OK {
			status = "FAIL"
		}
		line := fmt.Sprintf("%s  %s  %s  %d entries, seq %d..%d", status, l.Arena, l.Peer.Short(), l.Entries, l.First, l.Head)
		if l.Problem != "" {
			line += ": " + strings.TrimSpace(l.Problem)
		}
		p.Printf("%s\n", line)
	}
}
