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
			"the path and keeps the other versions aside until someone resolves them (realize\n" +
			"resolve, or deleting them under conflicts/ in the mount). This lists each contested\n" +
			"path with its versions: the one at the path (*) first, each with the name\n" +
			"`realize resolve --keep` takes (peer-hash), who made it, its time and size, and\n" +
			"whether its bytes are on this peer. Works without a running daemon.",
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

// printConflicts shows each contested path, then its versions: the one
// at the path (marked *) and those kept aside, with the name
// `realize resolve --keep` takes.
func printConflicts(p *printer, recs []control.ConflictRecord) {
	if len(recs) == 0 {
		p.Printf("no conflicts\n")
		return
	}
	for i, r := range recs {
		if i == 0 || recs[i-1].Arena != r.Arena || recs[i-1].Path != r.Path {
			p.Printf("%s:%s\n", r.Arena, r.Path.Quote())
		}
		mark, where := " ", "elsewhere"
		switch {
		case r.Current && r.Local:
			mark, where = "*", "at the path, here"
		case r.Current:
			mark, where = "*", "at the path"
		case r.Local:
			where = "kept here"
		}
		who := r.OriginName
		if who == "" {
			who = r.Origin.Short()
		}
		what := r.Kind
		if r.Size != nil {
			what = humanBytes(*r.Size)
		}
		when := "-"
		if !r.MTime.IsZero() {
			when = r.MTime.Local().Format("2006-01-02 15:04:05")
		}
		p.Printf("  %s %-21s  %-10s  %s  %9s  %s\n", mark, r.Version, who, when, what, where)
	}
}
