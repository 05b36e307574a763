package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/internal/config"
	"github.com/realizefs/realize/internal/service"
	"github.com/urfave/cli/v3"
)

// serviceHost is what `realize service` takes from the machine beyond env:
// tests replace it to install for either OS into a temporary home, as root
// or not, without running systemctl or launchctl.
var serviceHost = struct {
	goos       string
	geteuid    func() int
	getuid     func() int
	executable func() (string, error)
	lookupUser func(name string) (*user.User, error)
	runner     service.Runner
}{runtime.GOOS, os.Geteuid, os.Getuid, realizeBinary, user.Lookup, service.ExecRunner{}}

func serviceCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "service",
		Usage: "run the daemon as a login item: install, uninstall or status",
		Description: "Linux: a systemd user unit (~/.config/systemd/user/realize.service), or with\n" +
			"--system a system unit (/etc/systemd/system/realize.service) that runs the daemon\n" +
			"as the user who ran sudo. macOS: a launchd agent\n" +
			"(~/Library/LaunchAgents/net.realize.daemon.plist), or with --system a launchd\n" +
			"daemon in /Library/LaunchDaemons. The service runs this binary with this config:\n" +
			"`<binary> --config <config> daemon`.",
		Commands: []*cli.Command{serviceInstallCommand(e), serviceUninstallCommand(e), serviceStatusCommand(e)},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.Args().Present() {
				return usagef("service: unknown command %q: want install, uninstall or status", cmd.Args().First())
			}
			_ = cli.ShowSubcommandHelp(cmd)
			return usagef("service: want install, uninstall or status")
		},
	}
}

var systemFlag = &cli.BoolFlag{Name: "system", Usage: "system-wide (needs root) rather than for your login session"}

func serviceInstallCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "install",
		Usage: "write the service file and enable and start the service",
		Description: "Writes the file atomically, then runs the service manager (systemctl enable --now,\n" +
			"launchctl bootstrap). A different file already there is kept unless --force.\n" +
			"--dry-run prints the file and the commands and changes nothing.",
		Flags: []cli.Flag{
			systemFlag,
			&cli.BoolFlag{Name: "dry-run", Usage: "print the file and the commands instead"},
			&cli.BoolFlag{Name: "force", Usage: "replace a different existing service file"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if err := noArgs(cmd); err != nil {
				return err
			}
			dry := cmd.Bool("dry-run")
			plan, _, err := servicePlan(cmd, e, "install", !dry, true)
			if err != nil {
				return err
			}
			p := newPrinter(cmd, e)
			if dry {
				return printServiceDryRun(p, plan)
			}
			res, err := service.Install(ctx, plan, serviceHost.runner, cmd.Bool("force"))
			if err != nil {
				return err
			}
			return printServiceResult(p, plan, res)
		},
	}
}

func serviceUninstallCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "uninstall",
		Usage: "stop and disable the service and remove its file",
		Description: "Does nothing (and succeeds) when no service file is installed. If the service\n" +
			"manager cannot stop it (no session bus, say), the file stays unless --force.",
		Flags: []cli.Flag{systemFlag,
			&cli.BoolFlag{Name: "force", Usage: "remove the file even if stopping the service fails"}},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if err := noArgs(cmd); err != nil {
				return err
			}
			plan, _, err := servicePlan(cmd, e, "uninstall", true, false)
			if err != nil {
				return err
			}
			res, err := service.Uninstall(ctx, plan, serviceHost.runner, cmd.Bool("force"))
			if err != nil {
				return err
			}
			return printServiceResult(newPrinter(cmd, e), plan, res)
		},
	}
}

func serviceStatusCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "say whether the service is installed, enabled and running",
		Description: "Enabled and active are the service manager's own answers, as far as it can\n" +
			"give them; the commands to ask it yourself are printed too.",
		Flags: []cli.Flag{systemFlag},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if err := noArgs(cmd); err != nil {
				return err
			}
			plan, cfgErr, err := servicePlan(cmd, e, "status", false, false)
			if err != nil {
				return err
			}
			st := service.Query(ctx, plan, serviceHost.runner)
			if cfgErr != nil { // what install would write is not known
				st.Note = strings.Join(slices.DeleteFunc([]string{st.Note, message(cfgErr)}, func(s string) bool { return s == "" }), "; ")
			}
			return printServiceStatus(newPrinter(cmd, e), plan, st, cfgErr == nil)
		},
	}
}

// servicePlan builds the plan the command line asks for. needRoot refuses
// --system without root before anything is read or written; needConfig
// requires the config to load; without it, a config that does not load is
// returned as cfgErr (uninstall and status get by without it).
func servicePlan(cmd *cli.Command, e *env, verb string, needRoot, needConfig bool) (plan *service.Plan, cfgErr, err error) {
	h := serviceHost
	s := service.Spec{OS: h.goos, System: cmd.Bool("system"), UID: h.getuid()}
	root := h.geteuid() == 0
	sudoUser := e.getenv("SUDO_USER")
	if sudoUser == "root" {
		sudoUser = ""
	}
	if s.System && needRoot && !root {
		return nil, nil, &realize.Error{Op: verb + " service", Kind: realize.Permission,
			Err: errors.New("a system-wide service needs root: run `sudo realize service " + verb + " --system` (add --config FILE if yours is not in the default place)")}
	}
	if !s.System && root && sudoUser != "" {
		return nil, nil, &realize.Error{Op: verb + " service", Kind: realize.Invalid,
			Err: errors.New("run under sudo, this would be root's user service: drop sudo, or pass --system for a system-wide one")}
	}
	if s.System {
		s.User = sudoUser // "" = root: run from a root shell, the daemon runs as root
	} else {
		s.Home = e.getenv("HOME")
	}

	bin, err := h.executable()
	if err != nil {
		return nil, nil, &realize.Error{Op: verb + " service", Kind: realize.NotExist, Err: err}
	}
	s.Binary = bin
	if s.Config, err = serviceConfigPath(cmd, e, s, sudoUser); err != nil {
		return nil, nil, err
	}
	cfg, err := config.Load(s.Config)
	switch {
	case err == nil:
		s.Data = cfg.Data
	case needConfig:
		return nil, nil, err
	default:
		cfgErr = err
		s.Data = filepath.Dir(s.Config) // only the launchd log path depends on it
	}
	plan, err = service.New(s)
	return plan, cfgErr, err
}

// serviceConfigPath is the config the service runs with, absolute. Under
// sudo with --system and no --config, it is the invoking user's default
// config, not root's.
func serviceConfigPath(cmd *cli.Command, e *env, s service.Spec, sudoUser string) (string, error) {
	p := cmd.String("config")
	if p == "" {
		p = e.getenv(config.EnvVar)
	}
	if p == "" && s.System && sudoUser != "" {
		u, err := serviceHost.lookupUser(sudoUser)
		if err != nil {
			return "", &realize.Error{Op: "service", Kind: realize.NotExist, Err: err}
		}
		dir := filepath.Join(u.HomeDir, ".config")
		if s.OS == "darwin" {
			dir = filepath.Join(u.HomeDir, "Library", "Application Support")
		}
		p = filepath.Join(dir, "realize", "config.toml")
	}
	if p == "" {
		var err error
		if p, err = config.DefaultPath(); err != nil {
			return "", err
		}
	}
	return filepath.Abs(p)
}

// realizeBinary is the absolute path of the running binary, as the user
// reached it: through a symlink on PATH (so upgrading the link's target
// upgrades the service) when that is how it was started. A binary built by
// `go run` is refused: it is deleted when go run exits.
func realizeBinary() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	if strings.Contains(exe, string(filepath.Separator)+"go-build") {
		return "", errors.New("this realize is a temporary `go run` build; install it (go install ./cmd/realize) and run the installed one")
	}
	if p, err := exec.LookPath(os.Args[0]); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			a, err1 := filepath.EvalSymlinks(abs)
			b, err2 := filepath.EvalSymlinks(exe)
			if err1 == nil && err2 == nil && a == b {
				return abs, nil
			}
		}
	}
	return exe, nil
}

// serviceJSON is a service as --json prints it: scripts rely on these names.
type serviceJSON struct {
	Manager   string     `json:"manager"` // systemd or launchd
	Scope     string     `json:"scope"`   // user or system
	Path      string     `json:"path"`
	Action    string     `json:"action,omitempty"` // install/uninstall: written, replaced, unchanged, removed, absent
	Ran       [][]string `json:"ran,omitempty"`
	Failed    [][]string `json:"failed,omitempty"`  // uninstall --force: commands that failed
	Content   string     `json:"content,omitempty"` // --dry-run
	Installed *bool      `json:"installed,omitempty"`
	Current   *bool      `json:"current,omitempty"` // the file is what install would write now
	Enabled   string     `json:"enabled,omitempty"`
	Active    string     `json:"active,omitempty"`
	Note      string     `json:"note,omitempty"`
	Logs      string     `json:"logs"`
	Commands  struct {
		Install   [][]string `json:"install"`
		Uninstall [][]string `json:"uninstall"`
		Status    [][]string `json:"status"`
	} `json:"commands"`
}

func toServiceJSON(plan *service.Plan) serviceJSON {
	j := serviceJSON{Manager: plan.Manager, Scope: plan.Scope, Path: plan.Path, Logs: plan.Logs}
	j.Commands.Install = plan.Install
	j.Commands.Uninstall = plan.UninstallCommands()
	j.Commands.Status = plan.Status
	return j
}

func printServiceDryRun(p *printer, plan *service.Plan) error {
	if p.json {
		j := toServiceJSON(plan)
		j.Content = string(plan.Content)
		return p.JSON(j)
	}
	p.Printf("# %s would be written:\n%s\n# then run:\n%s\n", plan.Path, plan.Content, service.ShellLine(plan.Install))
	return nil
}

func printServiceResult(p *printer, plan *service.Plan, res *service.Result) error {
	if p.json {
		j := toServiceJSON(plan)
		j.Action, j.Ran, j.Failed = res.Action, res.Ran, res.Failed
		return p.JSON(j)
	}
	switch res.Action {
	case service.Absent:
		p.Printf("Not installed: %s does not exist.\n", res.Path)
		return nil
	case service.Unchanged:
		p.Printf("Already in place: %s\n", res.Path)
	default:
		p.Printf("%s %s\n", strings.ToUpper(res.Action[:1])+res.Action[1:], res.Path)
	}
	for _, c := range res.Ran {
		p.Printf("Ran: %s\n", service.Shell(c))
	}
	for _, c := range res.Failed {
		p.Printf("Failed (passed over, --force): %s\n", service.Shell(c))
	}
	if res.Action == service.Removed {
		return nil
	}
	p.Printf("Logs: %s\n", plan.Logs)
	if plan.Manager == "systemd" && plan.Scope == "user" {
		p.Printf("A user service runs while you are logged in; to start it at boot, run: loginctl enable-linger\n")
	}
	return nil
}

// printServiceStatus prints st; known says whether st.Current means
// anything (it does not when the config does not load).
func printServiceStatus(p *printer, plan *service.Plan, st service.Status, known bool) error {
	if p.json {
		j := toServiceJSON(plan)
		j.Installed, j.Enabled, j.Active, j.Note = &st.Installed, st.Enabled, st.Active, st.Note
		if st.Installed && known {
			j.Current = &st.Current
		}
		return p.JSON(j)
	}
	file := "not installed (run `realize service install`)"
	if st.Installed {
		file = "installed"
		if !st.Current && known {
			file += ", but differs from what install would write now (`realize service install --dry-run` shows it; --force replaces it)"
		}
	}
	p.Printf("Service:   %s (%s)\nFile:      %s: %s\nEnabled:   %s\nActive:    %s\nLogs:      %s\n",
		plan.Manager, plan.Scope, plan.Path, file, st.Enabled, st.Active, plan.Logs)
	if st.Note != "" {
		p.Printf("Note:      %s\n", st.Note)
	}
	p.Printf("Commands:\n  install:   %s\n  uninstall: %s\n  status:    %s\n",
		service.ShellLine(plan.Install), service.ShellLine(plan.UninstallCommands()), service.ShellList(plan.Status))
	return nil
}
