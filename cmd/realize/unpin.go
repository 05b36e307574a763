package main

import (
	"context"
	"fmt"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/internal/control"
	"github.com/urfave/cli/v3"
)

func unpinCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "unpin",
		Usage:     "let paths be unreal on this peer: free their space, keep them visible",
		ArgsUsage: "PATH...",
		Description: "PATH is a path inside an arena's directory, inside a mount of the share, or\n" +
			"ARENA:PATH. Real files below it move into the cache (a rename: no bytes are\n" +
			"copied) once another peer holds them; they stay listed and are fetched again\n" +
			"on read. A file no other peer holds is kept real and named: the household's\n" +
			"last copy is never dropped. Exits 1 if any file was kept for that reason.",
		Action: func(ctx context.Context, cmd *cli.Command) error {
			cfg, paths, err := pathArgs(cmd, e)
			if err != nil {
				return err
			}
			c := control.NewClient(control.SocketPath(cfg.Data))
			defer c.Close()
			rep, err := c.Unpin(ctx, control.PathRequest{Paths: paths})
			if err != nil {
				return err
			}
			p := newPrinter(cmd, e)
			if p.json {
				if err := p.JSON(rep); err != nil {
					return err
				}
			} else {
				for _, u := range rep.Unpinned {
					p.Printf("marked unpinned: %s:%s\n", u.Arena, u.Path.Quote())
				}
				p.Printf("%d files moved to the cache (%s)\n", rep.Files, humanBytes(rep.Bytes))
				for _, k := range rep.Kept {
					p.Printf("  kept real: %s:%s: %s\n", k.Arena, k.Path.Quote(), k.Reason)
				}
				if len(rep.Kept) > 0 {
					p.Printf("The mark is set; run unpin again once another peer holds the files kept real.\n")
				}
			}
			if len(rep.Kept) > 0 {
				return &realize.Error{Op: "unpin", Kind: realize.Conflict, Err: fmt.Errorf("%d files kept real (%s:%s: %s)",
					len(rep.Kept), rep.Kept[0].Arena, rep.Kept[0].Path, rep.Kept[0].Reason)}
			}
			return nil
		},
	}
}
