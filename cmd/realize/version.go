package main

import (
	"context"
	"runtime"

	"github.com/urfave/cli/v3"
)

func versionCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version of realize",
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if err := noArgs(cmd); err != nil {
				return err
			}
			p := newPrinter(cmd, e)
			if p.json {
				return p.JSON(map[string]string{"version": version(), "go": runtime.Version()})
			}
			p.Printf("realize %s (%s)\n", version(), runtime.Version())
			return nil
		},
	}
}
