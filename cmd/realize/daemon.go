package main

import (
	"context"
	"io"
	"log/slog"
	"os/signal"
	"syscall"

	"github.com/realizefs/realize/internal/config"
	"github.com/realizefs/realize/internal/daemon"
	"github.com/urfave/cli/v3"
)

func daemonCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "daemon",
		Usage: "run the daemon in the foreground until SIGINT or SIGTERM",
		Description: "Logs go to standard error. The first SIGINT/SIGTERM shuts down cleanly;\n" +
			"a second one kills the process.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "log-format", Usage: "`text` or json (default: the config's log.format)"},
			&cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error (default: the config's log.level)"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if err := noArgs(cmd); err != nil {
				return err
			}
			cfg, err := loadConfig(cmd, e)
			if err != nil {
				return err
			}
			logger, level, err := newLogger(e.stderr, cfg.Log, cmd.String("log-format"), cmd.String("log-level"))
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			go func() {
				<-ctx.Done()
				stop() // a second signal now kills: an escape hatch if shutdown hangs
			}()
			return daemon.Run(ctx, cfg, logger, daemon.Options{Version: version(), LogLevel: level})
		},
	}
}

// newLogger builds the daemon's slog logger; flags override the config.
// The level is returned when it follows the config (no --log-level), for
// the daemon to change when the config file does.
func newLogger(w io.Writer, lc config.Log, format, level string) (*slog.Logger, *slog.LevelVar, error) {
	var live *slog.LevelVar
	var lvl slog.Leveler
	if level != "" {
		var fixed slog.Level
		if err := fixed.UnmarshalText([]byte(level)); err != nil {
			return nil, nil, usagef("daemon: --log-level %q: want debug, info, warn or error", level)
		}
		lvl = fixed
	} else {
		live = new(slog.LevelVar)
		live.Set(lc.Level)
		lvl = live
	}
	if format == "" {
		format = lc.Format
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), live, nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), live, nil
	}
	return nil, nil, usagef("daemon: --log-format %q: want text or json", format)
}
