package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/realizefs/realize/internal/control"
)

// The binary is built once per test run, on first use, into binDir.
var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "realize-bin-"); buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "realize")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = errors.New(string(out) + err.Error())
		}
	})
	if buildErr != nil {
		t.Fatalf("building realize: %v", buildErr)
	}
	return binPath
}

// proc is a realize process started in the background.
type proc struct {
	cmd    *exec.Cmd
	out    bytes.Buffer // stdout and stderr
	exited chan struct{}
}

func start(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(binary(t), args...), exited: make(chan struct{})}
	// One writer for both pipes: output() locks it while the process may
	// still be writing.
	w := &syncWriter{w: &p.out}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGKILL) // by PID; a no-op if it exited
		<-p.exited
	})
	return p
}

// wait waits up to limit for the process to exit and returns its status.
func (p *proc) wait(t *testing.T, limit time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(limit):
		t.Fatalf("%v still running after %v; output:\n%s", p.cmd.Args, limit, p.output())
		return -1
	}
}

func (p *proc) output() string {
	w := p.cmd.Stdout.(*syncWriter)
	w.mu.Lock()
	defer w.mu.Unlock()
	return p.out.String()
}

// syncWriter serializes writes from the process's two pipes.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

// runBin runs the binary to completion (bounded) and returns its output
// (stdout and stderr) and exit status.
func runBin(t *testing.T, args ...string) (string, int) {
	t.Helper()
	p := start(t, args...)
	code := p.wait(t, 30*time.Second)
	return p.output(), code
}

func TestProcessDaemonLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.toml")
	data := filepath.Join(dir, "data")
	if out, code := runBin(t, "--config", cfg, "init", "--name", "proc", "--data", data,
		"--arena", "home="+filepath.Join(dir, "home"), "--deaf"); code != 0 {
		t.Fatalf("init: exit %d\n%s", code, out)
	}
	daemon := start(t, "--config", cfg, "daemon", "--log-format", "json")

	// Wait (bounded) for status --json to report it running.
	deadline := time.Now().Add(15 * time.Second)
	for {
		cmd := exec.Command(binary(t), "--config", cfg, "status", "--json")
		out, _ := cmd.Output()
		var rep control.StatusReport
		if json.Unmarshal(out, &rep) == nil && rep.Daemon.Running {
			if rep.Daemon.PID != daemon.cmd.Process.Pid || rep.Daemon.Name != "proc" {
				t.Errorf("status reports %+v, daemon pid %d", rep.Daemon, daemon.cmd.Process.Pid)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon not running after 15s; status said %q; daemon output:\n%s", out, daemon.output())
		}
		select {
		case <-daemon.exited:
			t.Fatalf("daemon exited early:\n%s", daemon.output())
		case <-time.After(50 * time.Millisecond):
		}
	}

	// A second daemon on the same data directory is refused, clearly.
	out, code := runBin(t, "--config", cfg, "daemon")
	if code != 1 || !strings.Contains(out, "data directory is in use") {
		t.Errorf("second daemon: exit %d, output:\n%s", code, out)
	}

	// SIGTERM: clean exit 0 within 5 s, socket and pid file removed.
	daemon.cmd.Process.Signal(syscall.SIGTERM)
	if code := daemon.wait(t, 5*time.Second); code != 0 {
		t.Fatalf("daemon exit %d after SIGTERM:\n%s", code, daemon.output())
	}
	for _, p := range []string{control.SocketPath(data), filepath.Join(data, "daemon.pid")} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind after shutdown (%v)", p, err)
		}
	}
	for _, want := range []string{`"msg":"daemon started"`, `"msg":"daemon stopped"`} {
		if !strings.Contains(daemon.output(), want) {
			t.Errorf("daemon JSON log lacks %s:\n%s", want, daemon.output())
		}
	}

	// Now status says the daemon is down: exit 1, still valid JSON.
	cmd := exec.Command(binary(t), "--config", cfg, "status", "--json")
	stdout, err := cmd.Output()
	var rep control.StatusReport
	if jerr := json.Unmarshal(stdout, &rep); jerr != nil || rep.Daemon.Running || cmd.ProcessState.ExitCode() != 1 {
		t.Errorf("status after stop: %v, exit %d, %q (%v)", err, cmd.ProcessState.ExitCode(), stdout, jerr)
	}
}

func TestProcessGarbageConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	cfg := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(cfg, []byte("name = \"x\"\n]]] garbage [[[\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := runBin(t, "--config", cfg, "daemon")
	if code != 1 || !strings.Contains(out, cfg+":2: ") {
		t.Errorf("exit %d, output %q; want exit 1 naming %s:2", code, out, cfg)
	}
}
