// Command realize is Realize's one binary: the daemon (`realize daemon`) and
// the CLI that talks to it over the local control socket. Each command
// lives in its own file; this one builds the app and is the single place
// where errors become messages and exit codes.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"time"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/internal/config"
	"github.com/urfave/cli/v3"
)

// Exit statuses (SPEC §8): scripts rely on them.
const (
	exitOK      = 0
	exitFailure = 1 // a failure the message explains
	exitUsage   = 2 // bad usage: unknown command or flag, bad flag value
)

// env is everything the commands take from the process, so tests can run
// the CLI in-process with their own.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	now            func() time.Time
	rand           io.Reader
	// geteuid tells whether the process may mount (0: root); runPriv runs
	// one of the commands that need it (mount, umount, mkdir of an overlay
	// work directory) and returns its combined output.
	geteuid func() int
	runPriv func(ctx context.Context, argv []string) ([]byte, error)
}

func main() {
	e := &env{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, now: time.Now, rand: rand.Reader,
		geteuid: os.Geteuid, runPriv: runCommand}
	os.Exit(run(context.Background(), e, os.Args))
}

// run runs the CLI with args (args[0] is the program name) and returns the
// exit status.
func run(ctx context.Context, e *env, args []string) int {
	err := newApp(e).Run(ctx, args)
	return report(e.stderr, err)
}

func newApp(e *env) *cli.Command {
	app := &cli.Command{
		Name:  "realize",
		Usage: "a peer-to-peer, partially synced filesystem",
		Description: "Realize shows every file of your household of machines everywhere, " +
			"and keeps their bytes only where you choose.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Usage: "config `FILE` (default: " + defaultConfigHint() + "; also " + config.EnvVar + ")"},
			&cli.BoolFlag{Name: "json", Usage: "print results as JSON"},
		},
		Commands: []*cli.Command{
			initCommand(e),
			idCommand(e),
			peerCommand(e),
			daemonCommand(e),
			statusCommand(e),
			logCommand(e),
			conflictsCommand(e),
			resolveCommand(e),
			pinCommand(e),
			unpinCommand(e),
			approveCommand(e),
			mountCommand(e),
			umountCommand(e),
			serviceCommand(e),
			versionCommand(e),
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.Args().Present() {
				return usagef("unknown command %q", cmd.Args().First())
			}
			cli.ShowRootCommandHelp(cmd)
			return usagef("no command given")
		},
		Writer:      e.stdout,
		ErrWriter:   e.stderr,
		HideVersion: true,
		// Errors are reported by report, once, and never by os.Exit from
		// inside the library.
		ExitErrHandler: func(context.Context, *cli.Command, error) {},
	}
	configure(app)
	return app
}

// configure sets what every command must share (the library does not
// inherit these): parse errors are bad usage, and repeated flags are not
// split at commas, since directories may contain commas.
func configure(cmd *cli.Command) {
	cmd.OnUsageError = func(_ context.Context, _ *cli.Command, err error, _ bool) error {
		return &usageError{msg: err.Error()}
	}
	cmd.DisableSliceFlagSeparator = true
	for _, sub := range cmd.Commands {
		configure(sub)
	}
}

// usageError is bad usage: exit status 2.
type usageError struct{ msg string }

func (u *usageError) Error() string { return u.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// report prints err for a person and returns the exit status for it.
func report(stderr io.Writer, err error) int {
	if err == nil {
		return exitOK
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "realize: %s\nRun 'realize help' for usage.\n", ue.msg)
		return exitUsage
	}
	fmt.Fprintf(stderr, "realize: %s\n", message(err))
	if hint := hint(realize.KindOf(err)); hint != "" {
		fmt.Fprintf(stderr, "realize: %s\n", hint)
	}
	return exitFailure
}

// message renders err. A config error already says where and what (file,
// line, field), so it is shown alone rather than behind an "op:" prefix.
func message(err error) string {
	var ce *config.Error
	if errors.As(err, &ce) {
		return ce.Error()
	}
	return err.Error()
}

// hint is a second line of help for an error kind, when there is one.
func hint(k realize.ErrKind) string {
	if k == realize.Unavailable {
		return "start it with `realize daemon` (or `make run` in a source tree)"
	}
	return ""
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

func defaultConfigHint() string {
	if p, err := config.DefaultPath(); err == nil {
		return p
	}
	return "<user config dir>/realize/config.toml"
}

// configPath returns the config file to use: --config, else REALIZE_CONFIG,
// else the default place.
func configPath(cmd *cli.Command, e *env) (string, error) {
	if p := cmd.String("config"); p != "" {
		return p, nil
	}
	if p := e.getenv(config.EnvVar); p != "" {
		return p, nil
	}
	return config.DefaultPath()
}

// loadConfig loads the config the command line points at.
func loadConfig(cmd *cli.Command, e *env) (*config.Config, error) {
	p, err := configPath(cmd, e)
	if err != nil {
		return nil, err
	}
	return config.Load(p)
}

// noArgs refuses positional arguments for commands that take none.
func noArgs(cmd *cli.Command) error {
	if cmd.Args().Present() {
		return usagef("%s: unexpected argument %q", cmd.Name, cmd.Args().First())
	}
	return nil
}
