package main

import (
	"context"

	"github.com/realizefs/realize/household"
	"github.com/urfave/cli/v3"
)

func idCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "id",
		Usage: "print this peer's public key (give it to `realize peer add` on the other peers)",
		Description: "Prints the key alone on one line, as 64 hex digits. It reads the key from the\n" +
			"data directory, so it works without a running daemon.",
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if err := noArgs(cmd); err != nil {
				return err
			}
			cfg, err := loadConfig(cmd, e)
			if err != nil {
				return err
			}
			id, err := household.LoadIdentity(household.KeyPath(cfg.Data))
			if err != nil {
				return err
			}
			p := newPrinter(cmd, e)
			if p.json {
				return p.JSON(map[string]any{"peer": id.ID(), "name": cfg.Name})
			}
			p.Printf("%s\n", id.ID())
			return nil
		},
	}
}
