package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/realizefs/realize/internal/service"
)

// recorder is a service.Runner that runs nothing.
type recorder struct {
	ran     []string
	missing bool
}

func (r *recorder) LookPath(name string) (string, error) {
	if r.missing {
		return "", exec.ErrNotFound
	}
	return "/usr/bin/" + name, nil
}

func (r *recorder) Run(_ context.Context, argv []string) ([]byte, error) {
	r.ran = append(r.ran, service.Shell(argv))
	switch argv[len(argv)-2] {
	case "is-enabled":
		return []byte("enabled\n"), nil
	case "is-active":
		return []byte("active\n"), nil
	}
	return nil, nil
}

// fakeHost makes `realize service` act as on goos, with euid, running
// /usr/local/bin/realize, and recording the manager's commands. Tests that
// use it must not run in parallel.
func fakeHost(t *testing.T, goos string, euid int) *recorder {
	old := serviceHost
	t.Cleanup(func() { serviceHost = old })
	r := &recorder{}
	serviceHost.goos = goos
	serviceHost.geteuid = func() int { return euid }
	serviceHost.getuid = func() int { return 1000 }
	serviceHost.executable = func() (string, error) { return "/usr/local/bin/realize", nil }
	serviceHost.lookupUser = func(name string) (*user.User, error) {
		return nil, errors.New("no user " + name)
	}
	serviceHost.runner = r
	return r
}

func TestServiceInstallLinuxUser(t *testing.T) {
	r := fakeHost(t, "linux", 1000)
	dir, cfg := initPeer(t)
	home := filepath.Join(dir, "home")
	vars := map[string]string{"HOME": home}
	unit := filepath.Join(home, ".config/systemd/user/realize.service")

	out, errs, code := runCLI(t, vars, "--config", cfg, "service", "install", "--dry-run")
	if code != 0 || !strings.Contains(out, "ExecStart=/usr/local/bin/realize --config "+cfg+" daemon") ||
		!strings.Contains(out, "systemctl --user daemon-reload && systemctl --user enable --now realize.service") {
		t.Fatalf("dry run: exit %d\n%s%s", code, out, errs)
	}
	if _, err := os.Stat(unit); !errors.Is(err, os.ErrNotExist) || len(r.ran) != 0 {
		t.Fatal("--dry-run wrote the unit or ran something")
	}

	out, errs, code = runCLI(t, vars, "--config", cfg, "service", "install")
	if code != 0 {
		t.Fatalf("install: exit %d\n%s%s", code, out, errs)
	}
	for _, want := range []string{"Written " + unit, "Ran: systemctl --user enable --now realize.service", "journalctl --user -u realize", "enable-linger"} {
		if !strings.Contains(out, want) {
			t.Errorf("install output lacks %q:\n%s", want, out)
		}
	}
	doc, err := os.ReadFile(unit)
	if err != nil || !strings.Contains(string(doc), "--config "+cfg+" daemon") {
		t.Fatalf("unit: %v\n%s", err, doc)
	}

	// status --json
	out, errs, code = runCLI(t, vars, "--config", cfg, "service", "status", "--json")
	var st serviceJSON
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("status: exit %d\n%s%s", code, out, errs)
	}
	if st.Manager != "systemd" || st.Scope != "user" || st.Path != unit || st.Installed == nil || !*st.Installed ||
		st.Current == nil || !*st.Current || st.Enabled != "enabled" || st.Active != "active" ||
		!reflect.DeepEqual(st.Commands.Install[1], []string{"systemctl", "--user", "enable", "--now", "realize.service"}) {
		t.Errorf("status: %s", out)
	}

	// A different binary: install refuses without --force.
	serviceHost.executable = func() (string, error) { return "/opt/realize", nil }
	_, errs, code = runCLI(t, vars, "--config", cfg, "service", "install")
	if code != 1 || !strings.Contains(errs, "--force") || !strings.Contains(errs, unit) {
		t.Errorf("install over a different unit: exit %d, %q", code, errs)
	}
	out, _, _ = runCLI(t, vars, "--config", cfg, "service", "status")
	if !strings.Contains(out, "differs from what install would write") {
		t.Errorf("status of an outdated unit:\n%s", out)
	}
	if out, errs, code = runCLI(t, vars, "--config", cfg, "service", "install", "--force", "--json"); code != 0 ||
		!strings.Contains(out, `"action":"replaced"`) {
		t.Errorf("forced install: exit %d\n%s%s", code, out, errs)
	}

	r.ran = nil
	out, errs, code = runCLI(t, vars, "--config", cfg, "service", "uninstall")
	if code != 0 || !strings.Contains(out, "Removed "+unit) {
		t.Fatalf("uninstall: exit %d\n%s%s", code, out, errs)
	}
	if _, err := os.Stat(unit); !errors.Is(err, os.ErrNotExist) {
		t.Error("uninstall left the unit")
	}
	if want := []string{"systemctl --user disable --now realize.service", "systemctl --user daemon-reload"}; !reflect.DeepEqual(r.ran, want) {
		t.Errorf("uninstall ran %q", r.ran)
	}
	out, _, code = runCLI(t, vars, "--config", cfg, "service", "uninstall")
	if code != 0 || !strings.Contains(out, "Not installed") {
		t.Errorf("second uninstall: exit %d\n%s", code, out)
	}
	out, _, code = runCLI(t, vars, "--config", cfg, "service", "status")
	if code != 0 || !strings.Contains(out, "not installed") {
		t.Errorf("status after uninstall: exit %d\n%s", code, out)
	}
}

func TestServiceInstallMacOS(t *testing.T) {
	r := fakeHost(t, "darwin", 501)
	dir, cfg := initPeer(t)
	home := filepath.Join(dir, "home")
	plist := filepath.Join(home, "Library/LaunchAgents/net.realize.daemon.plist")
	out, errs, code := runCLI(t, map[string]string{"HOME": home}, "--config", cfg, "service", "install", "--json")
	if code != 0 {
		t.Fatalf("install: exit %d\n%s%s", code, out, errs)
	}
	var res serviceJSON
	json.Unmarshal([]byte(out), &res)
	if res.Manager != "launchd" || res.Path != plist || res.Action != "written" ||
		!reflect.DeepEqual(r.ran, []string{"launchctl bootstrap gui/1000 " + plist}) {
		t.Errorf("install: %s (ran %q)", out, r.ran)
	}
	doc, _ := os.ReadFile(plist)
	logs := filepath.Join(dir, "data", "logs")
	if !strings.Contains(string(doc), "<string>"+filepath.Join(logs, "daemon.log")+"</string>") {
		t.Errorf("plist:\n%s", doc)
	}
	if fi, err := os.Stat(logs); err != nil || !fi.IsDir() {
		t.Errorf("log directory: %v", err)
	}
}

func TestServiceSystem(t *testing.T) {
	fakeHost(t, "linux", 1000)
	dir, cfg := initPeer(t)
	const unit = "/etc/systemd/system/realize.service"
	_, before := os.Stat(unit)

	// Not root: one sentence, nothing written.
	out, errs, code := runCLI(t, nil, "--config", cfg, "service", "install", "--system")
	if code != 1 || out != "" || !strings.Contains(errs, "needs root") || !strings.Contains(errs, "sudo realize service install --system") ||
		strings.Count(errs, "\n") != 1 {
		t.Errorf("not root: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if _, after := os.Stat(unit); (before == nil) != (after == nil) {
		t.Fatal("a refused install touched " + unit)
	}
	if _, errs, code := runCLI(t, nil, "--config", cfg, "service", "uninstall", "--system"); code != 1 || !strings.Contains(errs, "needs root") {
		t.Errorf("uninstall not root: exit %d, %q", code, errs)
	}

	// Root under sudo: the daemon runs as the invoking user, with that
	// user's default config.
	serviceHost.geteuid = func() int { return 0 }
	userHome := filepath.Join(dir, "ann")
	userCfg := filepath.Join(userHome, ".config", "realize", "config.toml")
	if _, errs, code := runCLI(t, nil, "--config", userCfg, "init", "--data", filepath.Join(userHome, "data")); code != 0 {
		t.Fatal(errs)
	}
	serviceHost.lookupUser = func(name string) (*user.User, error) {
		return &user.User{Username: name, HomeDir: userHome, Uid: "1000", Gid: "1000"}, nil
	}
	sudo := map[string]string{"SUDO_USER": "ann", "HOME": "/root"}
	out, errs, code = runCLI(t, sudo, "service", "install", "--system", "--dry-run")
	if code != 0 || !strings.Contains(out, "User=ann\n") || !strings.Contains(out, "--config "+userCfg+" daemon") ||
		!strings.Contains(out, "# "+unit+" would be written") || !strings.Contains(out, "systemctl daemon-reload && systemctl enable --now realize.service") {
		t.Errorf("sudo dry run: exit %d\n%s%s", code, out, errs)
	}
	// Under sudo without --system: refused.
	_, errs, code = runCLI(t, sudo, "--config", cfg, "service", "install")
	if code != 1 || !strings.Contains(errs, "--system") {
		t.Errorf("sudo user install: exit %d, %q", code, errs)
	}
}

func TestServiceFailures(t *testing.T) {
	r := fakeHost(t, "linux", 1000)
	dir, cfg := initPeer(t)
	vars := map[string]string{"HOME": filepath.Join(dir, "home")}
	unit := filepath.Join(dir, "home/.config/systemd/user/realize.service")

	// No config: install refuses, status still answers.
	missing := filepath.Join(dir, "none.toml")
	if _, errs, code := runCLI(t, vars, "--config", missing, "service", "install"); code != 1 || !strings.Contains(errs, "realize init") {
		t.Errorf("install without config: exit %d, %q", code, errs)
	}
	if out, errs, code := runCLI(t, vars, "--config", missing, "service", "status"); code != 0 || !strings.Contains(out, "realize init") {
		t.Errorf("status without config: exit %d\n%s%s", code, out, errs)
	}

	// No systemctl: the unit is written and the message says what to run.
	r.missing = true
	_, errs, code := runCLI(t, vars, "--config", cfg, "service", "install")
	if code != 1 || !strings.Contains(errs, "wrote "+unit) || !strings.Contains(errs, "systemctl is not on PATH") ||
		!strings.Contains(errs, "systemctl --user daemon-reload && systemctl --user enable --now realize.service") {
		t.Errorf("no systemctl: exit %d, %q", code, errs)
	}
	if _, err := os.Stat(unit); err != nil {
		t.Error("unit not written")
	}

	// A temporary go run build is refused.
	serviceHost.executable = realizeBinary
	if exe, _ := os.Executable(); strings.Contains(exe, "go-build") {
		if _, errs, code := runCLI(t, vars, "--config", cfg, "service", "install", "--dry-run"); code != 1 || !strings.Contains(errs, "go install") {
			t.Errorf("go run build: exit %d, %q", code, errs)
		}
	}

	// No macOS or Linux: unsupported.
	fakeHost(t, "plan9", 1000)
	if _, errs, code := runCLI(t, vars, "--config", cfg, "service", "status"); code != 1 || !strings.Contains(errs, "plan9") {
		t.Errorf("plan9: exit %d, %q", code, errs)
	}
}

func TestServiceUsage(t *testing.T) {
	fakeHost(t, "linux", 1000)
	_, cfg := initPeer(t)
	for _, args := range [][]string{
		{"service"},
		{"service", "start"},
		{"service", "install", "extra"},
		{"service", "status", "--bogus"},
	} {
		_, errs, code := runCLI(t, nil, append([]string{"--config", cfg}, args...)...)
		if code != 2 {
			t.Errorf("%q: exit %d, %q; want 2", args, code, errs)
		}
	}
}
