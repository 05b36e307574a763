package main

import (
	"context"
	"fmt"
	"os"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/internal/config"
	"github.com/realizefs/realize/internal/control"
	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v3"
)

func pinCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "pin",
		Usage:     "keep paths real on this peer: fetch every file below them",
		ArgsUsage: "PATH...",
		Description: "PATH is a path inside an arena's directory, inside a mount of the share, or\n" +
			"ARENA:PATH. The mark is inherited by everything below the path, now and later;\n" +
			"files are fetched (with a progress bar on a terminal) and placed as real files.\n" +
			"Exits 1 if any file could not be fetched (it stays unreal; pin again later).",
		Action: func(ctx context.Context, cmd *cli.Command) error {
			cfg, paths, err := pathArgs(cmd, e)
			if err != nil {
				return err
			}
			c := control.NewClient(control.SocketPath(cfg.Data))
			defer c.Close()
			p := newPrinter(cmd, e)
			bar := newPinBar(p, e)
			var failed []control.PathFailure
			err = c.Pin(ctx, control.PathRequest{Paths: paths}, func(ev *control.PinEvent) error {
				if p.json {
					if ev.Done {
						return p.JSON(ev)
					}
					return nil
				}
				bar.show(ev)
				if ev.Done {
					failed = append(failed, ev.Failed...)
					p.Printf("pinned %s:%s  %d files, %s\n", ev.Arena, ev.Path.Quote(), ev.Files, humanBytes(ev.Bytes))
				}
				return nil
			})
			if err != nil {
				return err
			}
			for _, f := range failed {
				p.Printf("  not fetched: %s:%s: %s\n", f.Arena, f.Path.Quote(), f.Reason)
			}
			if len(failed) > 0 {
				return &realize.Error{Op: "pin", Kind: realize.Unavailable, Err: fmt.Errorf("%d files could not be fetched; they stay unreal", len(failed))}
			}
			return nil
		},
	}
}

// pinBar draws the progress of a pin on stderr when it is a terminal.
type pinBar struct {
	bar *progressbar.ProgressBar
	of  string
}

func newPinBar(p *printer, e *env) *pinBar {
	if p.json || e.stderr != os.Stderr || !isTerminal(os.Stderr) {
		return &pinBar{}
	}
	return &pinBar{of: "?"}
}

func (b *pinBar) show(ev *control.PinEvent) {
	if b.of == "" {
		return
	}
	key := string(ev.Arena) + ":" + string(ev.Path)
	if b.bar == nil || b.of != key {
		b.of = key
		b.bar = progressbar.NewOptions64(ev.Bytes, progressbar.OptionSetWriter(os.Stderr),
			progressbar.OptionShowBytes(true), progressbar.OptionSetDescription("pin "+key),
			progressbar.OptionClearOnFinish(), progressbar.OptionThrottle(100_000_000))
	}
	_ = b.bar.Set64(ev.BytesDone)
	if ev.Done {
		_ = b.bar.Finish()
	}
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// pathArgs loads the config and resolves every argument to ARENA:PATH.
func pathArgs(cmd *cli.Command, e *env) (*config.Config, []string, error) {
	if !cmd.Args().Present() {
		return nil, nil, usagef("%s: want at least one PATH", cmd.Name)
	}
	cfg, err := loadConfig(cmd, e)
	if err != nil {
		return nil, nil, err
	}
	var out []string
	for _, a := range cmd.Args().Slice() {
		r, err := resolveArg(cfg, a)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, r)
	}
	return cfg, out, nil
}
