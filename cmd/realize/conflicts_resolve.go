package main

import (
	"context"
	"strings"

	"github.com/realizefs/realize/internal/control"
	"github.com/urfave/cli/v3"
)

func resolveCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "resolve",
		Usage:     "settle a conflict: keep one version, or every version as copies",
		ArgsUsage: "PATH",
		Description: "PATH is a contested path (see `realize conflicts`): inside an arena's directory,\n" +
			"inside a mount of the share, or ARENA:PATH. Without a flag the path keeps what it\n" +
			"shows now and the other versions are dropped; --keep VERSION puts that version at\n" +
			"the path instead (VERSION as `realize conflicts` lists it, e.g. 1a2b3c4d-5e6f7a8b9c0d,\n" +
			"or the first digits of its hash); --keep-all-as-copies keeps the path as it is and\n" +
			"places every other version beside it as a new file, \"name (conflict PEER HASH).ext\".\n" +
			"The resolution goes to every peer: the conflict is gone everywhere and the bytes of\n" +
			"the dropped versions are no longer kept. Needs the running daemon.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "keep", Usage: "put `VERSION` at the path"},
			&cli.BoolFlag{Name: "keep-all-as-copies", Usage: "keep every other version as a new file beside the path"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.NArg() != 1 {
				return usagef("resolve: want one PATH")
			}
			keep, copies := cmd.String("keep"), cmd.Bool("keep-all-as-copies")
			if keep != "" && copies {
				return usagef("resolve: --keep and --keep-all-as-copies do not go together")
			}
			if cmd.IsSet("keep") && strings.TrimSpace(keep) == "" {
				return usagef("resolve: --keep needs a VERSION (see realize conflicts)")
			}
			cfg, err := loadConfig(cmd, e)
			if err != nil {
				return err
			}
			path, err := resolveArg(cfg, cmd.Args().First())
			if err != nil {
				return err
			}
			c := control.NewClient(control.SocketPath(cfg.Data))
			defer c.Close()
			rep, err := c.Resolve(ctx, control.ResolveRequest{Path: path, Keep: keep, Copies: copies})
			if err != nil {
				return err
			}
			p := newPrinter(cmd, e)
			if p.json {
				return p.JSON(rep)
			}
			printResolved(p, rep)
			return nil
		},
	}
}

func printResolved(p *printer, rep *control.ResolveReport) {
	p.Printf("resolved %s:%s: kept %s\n", rep.Arena, rep.Path.Quote(), describe(rep.Kept))
	for _, c := range rep.Copies {
		p.Printf("  copy    %s:%s\n", rep.Arena, c.Quote())
	}
	for _, d := range rep.Dropped {
		p.Printf("  dropped %s\n", describe(d))
	}
}

// describe names a version for people: its name, who made it, what it is.
func describe(r control.ConflictRecord) string {
	who := r.OriginName
	if who == "" {
		who = r.Origin.Short()
	}
	what := r.Kind
	if r.Size != nil {
		what = humanBytes(*r.Size)
	}
	return r.Version + " (" + who + ", " + what + ")"
}
