package main

import (
	"context"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/internal/control"
	"github.com/urfave/cli/v3"
)

func conflictsCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "conflicts",
		Usage: "list versions kept aside after concurrent edits",
		Description: "When two peers change a path concurrently, every peer keeps the same winner at\n" +
			"the path and keeps the other versions aside until someone resolves them. This\n" +
			"lists them: arena, path, who made the version, size, hash, and whether its bytes\n" +
			"are on this peer. Works without a running daemon.",
		Flags: []cli.Flag{&cli.StringFlag{Name: "arena", Usage: "only this `ARENA`"}},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if err := noArgs(cmd); err != nil {
				return err
			}
			var arena realize.ArenaName
			if a := cmd.String("arena"); a != "" {
				var err error
				if arena, err = realize.ParseArenaName(a); err != nil {
					return &usageError{msg: err.Error()}
				}
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
			recs, err := b.Conflicts(ctx, arena)
			if err != nil {
				return err
			}
			p := newPrinter(cmd, e)
			if p.json {
				return p.JSON(recs)
			}
			printConflicts(p, recs)
			return nil
		},
	}
}

func printConflicts(p *printer, recs []control.ConflictRecord) {
	if len(recs) == 0 {
		p.Printf("no conflicts\n")
		return
	}
	for _, r := range recs {
		who := r.OriginName
		if who == "" {
			who = r.Origin.Short()
		}
		what := r.Kind
		if r.Hash != nil {
			what = humanBytes(*r.Size) + "  " + r.Hash.Short()
		}
		where := "elsewhere"
		if r.Local {
			where = "kept here"
		}
		p.Printf("%s:%s  by %s  %s  %s  (%s)\n", r.Arena, r.Path.Quote(), who, r.MTime.Local().Format("2006-01-02 15:04:05"), what, where)
	}
}
