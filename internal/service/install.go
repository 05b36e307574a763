package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/realizefs/realize"
)

// Runner runs the service manager's commands. ExecRunner runs them for
// real; tests record them instead.
type Runner interface {
	// LookPath finds a command, as exec.LookPath.
	LookPath(name string) (string, error)
	// Run runs argv and returns its combined output; a non-zero exit is
	// an error.
	Run(ctx context.Context, argv []string) ([]byte, error)
}

// ExecRunner is the Runner that runs commands.
type ExecRunner struct{}

func (ExecRunner) LookPath(name string) (string, error) { return exec.LookPath(name) }

func (ExecRunner) Run(ctx context.Context, argv []string) ([]byte, error) {
	return exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
}

// What Install and Uninstall did to the file.
const (
	Written   = "written"   // there was none
	Replaced  = "replaced"  // there was a different one (--force)
	Unchanged = "unchanged" // the same file was already there
	Removed   = "removed"
	Absent    = "absent" // uninstall: there was nothing to remove
)

// Result is what Install or Uninstall did.
type Result struct {
	Path   string
	Action string     // Written, Replaced, Unchanged, Removed or Absent
	Ran    [][]string // the manager's commands that ran, in order
	Failed [][]string // uninstall --force: commands that failed and were passed over
}

// Install puts the plan's file in place (atomically: a temporary file
// renamed over it) and has the manager enable and start the service. A
// different file already at the path is kept unless force is set. If the
// manager's command is missing, the error says the file was written and
// what to run.
func Install(ctx context.Context, p *Plan, r Runner, force bool) (*Result, error) {
	old, err := os.ReadFile(p.Path)
	existed := err == nil
	switch {
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return nil, fileError("read service file", p.Path, err)
	case existed && !bytes.Equal(old, p.Content) && !force:
		return nil, &realize.Error{Op: "install service", Kind: realize.Exist, Path: p.Path,
			Err: errors.New("a different file is already there; `realize service install --dry-run` shows what would replace it, --force replaces it")}
	}
	res := &Result{Path: p.Path, Action: Written}
	if existed {
		res.Action = Replaced
		if bytes.Equal(old, p.Content) {
			res.Action = Unchanged
		}
	}
	for _, d := range p.MakeDirs {
		if err := makeDir(d, p.DirOwner); err != nil {
			return nil, err
		}
	}
	if res.Action != Unchanged {
		if err := writeAtomic(p.Path, p.Content); err != nil {
			return nil, err
		}
	}

	cmds := p.reinstall(existed, res.Action == Replaced)
	did := "wrote " + p.Path
	if res.Action == Unchanged {
		did = p.Path + " was already in place"
	}
	if _, err := r.LookPath(p.Install[0][0]); err != nil {
		var manual [][]string
		for _, c := range cmds {
			if !c.mayFail {
				manual = append(manual, c.argv)
			}
		}
		return res, &realize.Error{Op: "install service", Kind: realize.Unavailable,
			Err: fmt.Errorf("%s, but %s is not on PATH, so the service is not enabled; where %s runs, run:\n  %s",
				did, p.Install[0][0], p.Manager, ShellLine(manual))}
	}
	for i, c := range cmds {
		out, err := r.Run(ctx, c.argv)
		if err != nil && !c.mayFail {
			rest := make([][]string, 0, len(cmds)-i)
			for _, c := range cmds[i:] {
				rest = append(rest, c.argv)
			}
			return res, &realize.Error{Op: "install service", Kind: realize.Other,
				Err: fmt.Errorf("%s, but `%s` failed: %s\nonce that is fixed, run:\n  %s", did, Shell(c.argv), outputOf(out, err), ShellLine(rest))}
		}
		if err == nil {
			res.Ran = append(res.Ran, c.argv)
		}
	}
	return res, nil
}

type step struct {
	argv    []string
	mayFail bool
}

// reinstall is the commands that enable the service from the file just put
// in place. Over an existing file, launchd must first unload what it has
// loaded (bootstrap of a loaded label fails), and systemd restarts a
// running service whose unit changed.
func (p *Plan) reinstall(existed, changed bool) []step {
	var out []step
	if existed && p.Manager == "launchd" {
		for _, c := range p.Uninstall {
			out = append(out, step{c, true}) // fails when it is not loaded
		}
	}
	for _, c := range p.Install {
		out = append(out, step{argv: c})
	}
	if changed && p.restart != nil {
		out = append(out, step{argv: p.restart})
	}
	return out
}

// Uninstall stops and disables the service, then removes its file. If the
// manager is missing, the file is removed and the Result says nothing ran.
// If one of its commands fails, the file is kept, unless force is set.
func Uninstall(ctx context.Context, p *Plan, r Runner, force bool) (*Result, error) {
	res := &Result{Path: p.Path, Action: Absent}
	if _, err := os.Lstat(p.Path); errors.Is(err, fs.ErrNotExist) {
		return res, nil
	} else if err != nil {
		return nil, fileError("uninstall service", p.Path, err)
	}
	_, err := r.LookPath(p.Uninstall[0][0])
	manager := err == nil
	if manager {
		for _, c := range p.Uninstall {
			if p.Manager == "launchd" {
				// bootout of a label that is not loaded fails: ask first.
				if _, err := r.Run(ctx, p.Status[0]); err != nil {
					continue
				}
			}
			out, err := r.Run(ctx, c)
			if err != nil && !force {
				return res, &realize.Error{Op: "uninstall service", Kind: realize.Other, Path: p.Path,
					Err: fmt.Errorf("`%s` failed, so the file is left in place (--force removes it anyway): %s", Shell(c), outputOf(out, err))}
			}
			if err == nil {
				res.Ran = append(res.Ran, c)
			} else {
				res.Failed = append(res.Failed, c)
			}
		}
	}
	if err := os.Remove(p.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return res, fileError("uninstall service", p.Path, err)
	}
	res.Action = Removed
	if manager && p.reload != nil { // forget the unit now, not at the next reload
		if _, err := r.Run(ctx, p.reload); err == nil {
			res.Ran = append(res.Ran, p.reload)
		}
	}
	return res, nil
}

// UninstallCommands is what Uninstall does, as commands a person could run.
func (p *Plan) UninstallCommands() [][]string {
	out := append([][]string(nil), p.Uninstall...)
	out = append(out, []string{"rm", p.Path})
	if p.reload != nil {
		out = append(out, p.reload)
	}
	return out
}

// Status is what Query found. Enabled and Active are the manager's own
// words (systemd: enabled/disabled/…, active/inactive/failed/…; launchd:
// enabled/disabled/not loaded, running/not running/…), or "unknown".
type Status struct {
	Installed bool // the file is there
	Current   bool // and is what Install would write now
	Enabled   string
	Active    string
	Note      string // why something is unknown, if it is
}

// Query reports the file and asks the manager about the service, as far
// as it can (the manager may be missing or unreachable).
func Query(ctx context.Context, p *Plan, r Runner) Status {
	st := Status{Enabled: "unknown", Active: "unknown"}
	if old, err := os.ReadFile(p.Path); err == nil {
		st.Installed, st.Current = true, bytes.Equal(old, p.Content)
	} else if !errors.Is(err, fs.ErrNotExist) {
		st.Note = err.Error()
	}
	if _, err := r.LookPath(p.Status[0][0]); err != nil {
		st.Note = p.Status[0][0] + " is not on PATH"
		return st
	}
	switch p.Manager {
	case "systemd":
		var notes []string
		st.Enabled, notes = firstWord(ctx, r, p.Status[0], notes)
		st.Active, notes = firstWord(ctx, r, p.Status[1], notes)
		st.Note = strings.Join(notes, "; ")
	case "launchd":
		out, err := r.Run(ctx, p.Status[0])
		if err != nil {
			st.Enabled, st.Active = "not loaded", "not running"
		} else {
			st.Enabled, st.Active = "enabled", "unknown"
			for _, line := range strings.Split(string(out), "\n") {
				if k, v, ok := strings.Cut(strings.TrimSpace(line), " = "); ok && k == "state" {
					st.Active = v
					break
				}
			}
		}
		if out, err := r.Run(ctx, p.Status[1]); err == nil {
			for _, line := range strings.Split(string(out), "\n") {
				k, v, ok := strings.Cut(strings.TrimSpace(line), " => ")
				if ok && strings.Trim(k, `"`) == Label && (v == "disabled" || v == "true") {
					st.Enabled = "disabled"
				}
			}
		}
	}
	return st
}

// firstWord runs a systemctl is-… query: its answer is the first line of
// output, whatever the exit status, unless that is an error message.
func firstWord(ctx context.Context, r Runner, argv []string, notes []string) (string, []string) {
	out, err := r.Run(ctx, argv)
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if line != "" && !strings.ContainsAny(line, " :") {
		return line, notes
	}
	return "unknown", append(notes, fmt.Sprintf("`%s`: %s", Shell(argv), outputOf(out, err)))
}

func outputOf(out []byte, err error) string {
	if s := strings.TrimSpace(string(out)); s != "" {
		return s
	}
	if err != nil {
		return err.Error()
	}
	return "no output"
}

// writeAtomic replaces path by content: a temporary file in the same
// directory, synced, then renamed over it, so the manager never reads half
// a file.
func writeAtomic(path string, content []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fileError("install service", dir, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fileError("install service", dir, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after the rename, a no-op
	_, err = f.Write(content)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return fileError("install service", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// makeDir creates dir (mode 0700), owned by the account owner if one is
// named: a system-wide launchd job writes its logs as that user.
func makeDir(dir, owner string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fileError("install service", dir, err)
	}
	if owner == "" {
		return nil
	}
	u, err := user.Lookup(owner)
	if err != nil {
		return &realize.Error{Op: "install service", Kind: realize.NotExist, Err: err}
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		return fileError("install service", dir, err)
	}
	return nil
}

func fileError(op, path string, err error) error {
	kind := realize.IO
	if errors.Is(err, fs.ErrPermission) {
		kind = realize.Permission
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return &realize.Error{Op: op, Kind: kind, Path: path, Err: err}
}

// Shell renders argv as one shell command line.
func Shell(argv []string) string {
	var b strings.Builder
	for i, a := range argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		if a == "" || strings.ContainsAny(a, " \t\n'\"$\\*?[]{}()<>|&;#~`!") {
			b.WriteString("'" + strings.ReplaceAll(a, "'", `'\''`) + "'")
		} else {
			b.WriteString(a)
		}
	}
	return b.String()
}

// ShellLine renders commands as one line, joined by &&: each runs if the
// one before succeeded.
func ShellLine(cmds [][]string) string { return join(cmds, " && ") }

// ShellList renders commands as one line, joined by ";": each runs.
func ShellList(cmds [][]string) string { return join(cmds, "; ") }

func join(cmds [][]string, sep string) string {
	parts := make([]string, len(cmds))
	for i, c := range cmds {
		parts[i] = Shell(c)
	}
	return strings.Join(parts, sep)
}
