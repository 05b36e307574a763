// Package e2e runs the realize binary as a user would: real daemons on
// temporary directories, driven through the CLI, killed with SIGKILL.
package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "realize-e2e-bin-")
	if err != nil {
		panic(err)
	}
	os.Chmod(dir, 0o755) // the unprivileged-daemon test runs it as nobody
	binary = filepath.Join(dir, "realize")
	out, err := exec.Command("go", "build", "-o", binary, "github.com/realizefs/realize/cmd/realize").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building realize: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// peer is one realize installation in temporary directories.
type peer struct {
	t      *testing.T
	name   string
	id     string // public key, hex
	listen string
	config string
	data   string
	arena  string // the real directory of arena "home"
	daemon *exec.Cmd
	logs   *bytes.Buffer
	exited chan struct{}
}

func newPeer(t *testing.T) *peer { return newNamedPeer(t, "e2e", "") }

// newNamedPeer makes a peer called name whose arena is pinned (a full
// real copy, as a replica); listen "" makes it deaf. No NFS server.
func newNamedPeer(t *testing.T, name, listen string) *peer {
	t.Helper()
	return newPeerWith(t, name, listen, "", true)
}

// newPeerWith makes a peer with an NFS server address (nfsAddr, "" =
// none) and the arena's default mark.
func newPeerWith(t *testing.T, name, listen, nfsAddr string, pin bool) *peer {
	t.Helper()
	base := t.TempDir()
	p := &peer{t: t, name: name, listen: listen, config: filepath.Join(base, "config.toml"), data: filepath.Join(base, "data"), arena: filepath.Join(base, "home")}
	if err := os.Mkdir(p.arena, 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"init", "--name", name, "--data", p.data, "--arena", "home=" + p.arena, "--nfs", nfsAddr}
	if pin {
		args = append(args, "--pin")
	}
	if listen == "" {
		args = append(args, "--deaf")
	} else {
		args = append(args, "--listen", listen)
	}
	p.mustRun(args...)
	p.id = strings.TrimSpace(p.mustRun("id"))
	return p
}

// run runs a CLI command and returns stdout, stderr and the exit code.
func (p *peer) run(args ...string) (string, string, int) {
	p.t.Helper()
	cmd := exec.Command(binary, append([]string{"--config", p.config}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		p.t.Fatalf("running %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

func (p *peer) mustRun(args ...string) string {
	p.t.Helper()
	out, errs, code := p.run(args...)
	if code != 0 {
		p.t.Fatalf("realize %v: exit %d\nstdout: %s\nstderr: %s", args, code, out, errs)
	}
	return out
}

// start runs the daemon in the background and waits until it answers.
func (p *peer) start() {
	p.t.Helper()
	cmd := exec.Command(binary, "--config", p.config, "daemon")
	p.logs = &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.daemon, p.exited = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(p.exited) }()
	p.t.Cleanup(p.kill)
	p.waitFor("daemon answers", 10*time.Second, func() bool {
		_, _, code := p.run("status", "--json")
		return code == 0
	})
}

// kill stops the daemon with SIGKILL, by PID, and waits for it.
func (p *peer) kill() {
	if p.daemon == nil || p.daemon.Process == nil {
		return
	}
	p.daemon.Process.Signal(syscall.SIGKILL)
	<-p.exited
	p.daemon = nil
}

// stop stops the daemon with SIGTERM and checks it exits cleanly.
func (p *peer) stop() {
	p.t.Helper()
	p.daemon.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.t.Fatalf("daemon did not stop within 10 s after SIGTERM\n%s", p.logs)
	}
	if code := p.daemon.ProcessState.ExitCode(); code != 0 {
		p.t.Fatalf("daemon exit code %d after SIGTERM\n%s", code, p.logs)
	}
	p.daemon = nil
}

func (p *peer) waitFor(what string, limit time.Duration, ok func() bool) {
	p.t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			logs := ""
			if p.logs != nil {
				logs = p.logs.String()
			}
			p.t.Fatalf("timed out after %v waiting for %s\ndaemon log:\n%s", limit, what, logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logRecord is the part of `realize log --json` output the tests read.
type logRecord struct {
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	Peer string    `json:"peer"`
	Op   string    `json:"op"`
	Path string    `json:"path"`
	From string    `json:"from"`
	Kind string    `json:"kind"`
	Hash string    `json:"hash"`
	Size *int64    `json:"size"`
}

func (p *peer) log() []logRecord {
	p.t.Helper()
	out := p.mustRun("log", "--json")
	var recs []logRecord
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r logRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			p.t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	return recs
}

// status is the part of `realize status --json` the tests read.
type status struct {
	Daemon struct {
		Running bool `json:"running"`
	} `json:"daemon"`
	Arenas []struct {
		Name        string    `json:"name"`
		Files       int64     `json:"files"`
		PendingHash int64     `json:"pending_hash"`
		LastScan    time.Time `json:"last_scan"`
		Scanning    bool      `json:"scanning"`
		Received    int64     `json:"received_bytes"`
		Reused      int64     `json:"reused_bytes"`
		Settling    int64     `json:"settling_deletes"`
	} `json:"arenas"`
	Peers []struct {
		Name      string    `json:"name"`
		Connected bool      `json:"connected"`
		Since     time.Time `json:"since"`
		Address   string    `json:"address"`
		Behind    uint64    `json:"behind"`
	} `json:"peers"`
}

func (p *peer) status() status {
	p.t.Helper()
	out, _, _ := p.run("status", "--json")
	var s status
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		p.t.Fatalf("status --json %q: %v", out, err)
	}
	return s
}

// waitIndexed waits until the first full scan is done and nothing is
// pending (files to hash, deletions settling).
func (p *peer) waitIndexed(limit time.Duration) {
	p.t.Helper()
	p.waitFor("indexing to finish", limit, func() bool {
		s := p.status()
		return len(s.Arenas) == 1 && !s.Arenas[0].LastScan.IsZero() && !s.Arenas[0].Scanning && s.Arenas[0].PendingHash == 0 &&
			s.Arenas[0].Settling == 0
	})
}

func b3sum(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("b3sum", "--no-names", path).Output()
	if err != nil {
		t.Skipf("b3sum unavailable (%v): install it (apt-get install b3sum)", err)
	}
	return strings.TrimSpace(string(out))
}
