package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The kernel tests boot a real Linux kernel (Debian's user-mode-linux) as a
// process and mount the daemons' NFS exports in it: see test/kernel/.

// kernelDir is test/kernel, from this package's directory.
var kernelDir = filepath.Join("..", "..", "test", "kernel")

// kernelRequiredEnv, set to "require" (as .ci/run does once it installed
// the packages), turns "this machine cannot run UML" into a failure.
const kernelRequiredEnv = "REALIZE_KERNEL_TEST"

// exitCannotRun is run-uml.sh's exit status when the machine lacks something.
const exitCannotRun = 3

// requireKernel skips the test, with one clear message, when this machine
// cannot run user-mode-linux (or fails it when the run requires it).
func requireKernel(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("bash"); err != nil {
		cannotRunKernel(t, "no bash to run test/kernel/run-uml.sh")
	}
	out, err := exec.Command("bash", filepath.Join(kernelDir, "run-uml.sh"), "--check").CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.ExitCode() == exitCannotRun:
		cannotRunKernel(t, strings.TrimSpace(string(out)))
	default:
		t.Fatalf("run-uml.sh --check: %v\n%s", err, out)
	}
}

func cannotRunKernel(t *testing.T, why string) {
	t.Helper()
	if os.Getenv(kernelRequiredEnv) == "require" {
		t.Fatalf("%s=require, but this machine cannot run the kernel tests:\n%s", kernelRequiredEnv, why)
	}
	t.Skipf("kernel tests need user-mode-linux; skipped: %s", why)
}

// guestResult is one run of test/kernel/run-uml.sh.
type guestResult struct {
	out    string // the runner's messages and the guest console
	code   int    // 0 PASS, 1 FAIL, 124 timeout, 3 cannot run
	umlPID int    // the UML kernel process, as the runner reported it
}

func (r guestResult) passed() bool {
	return r.code == 0 && strings.Contains(r.out, "KTEST: RESULT PASS")
}

// failures returns the guest's failed checks, one per line, to be shown
// before its whole console: a CI excerpt may keep only the head of it.
func (r guestResult) failures() string {
	var b strings.Builder
	for _, l := range strings.Split(r.out, "\n") {
		if strings.Contains(l, "KTEST: FAIL") {
			b.WriteString(strings.TrimSpace(l))
			b.WriteByte('\n')
		}
	}
	return b.String()
}

var umlPIDLine = regexp.MustCompile(`run-uml: UML pid (\d+)`)

// runGuest boots UML with script (a path) as the guest's test, env as its
// variables, limited to limit. The runner and everything it starts run in
// their own process group, killed as a whole if anything is left over.
func runGuest(t *testing.T, script string, limit time.Duration, env map[string]string) guestResult {
	t.Helper()
	args := []string{filepath.Join(kernelDir, "run-uml.sh"), "--work", t.TempDir(),
		"--timeout", strconv.Itoa(int(limit.Seconds()))}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "--env", k+"="+env[k])
	}
	args = append(args, script)

	ctx, cancel := context.WithTimeout(context.Background(), limit+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Past its own limit the runner is told to stop (it kills UML), then
	// killed; the group kill below catches anything still alive.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	r := guestResult{out: out.String(), code: cmd.ProcessState.ExitCode()}
	if m := umlPIDLine.FindStringSubmatch(r.out); m != nil {
		r.umlPID, _ = strconv.Atoi(m[1])
	}
	if r.code == exitCannotRun {
		cannotRunKernel(t, r.out)
	}
	if ctx.Err() != nil {
		t.Fatalf("run-uml.sh did not stop within %v of its %v limit (%v)\n%s", time.Since(start)-limit, limit, err, r.out)
	}
	t.Logf("%s: exit %d after %.1fs", filepath.Base(script), r.code, time.Since(start).Seconds())
	return r
}

// guestScript writes a throwaway guest script and returns its path.
func guestScript(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "guest.sh")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// freeTCPAddr returns a 127.0.0.1 TCP address nothing listens on right now.
func freeTCPAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// nfsPeer is a peer whose config has an NFS server address.
type nfsPeer struct {
	*peer
	nfs string // 127.0.0.1:PORT
}

// newNFSPeer is a listening peer with an NFS server on a free port and
// the arena's default mark pin.
func newNFSPeer(t *testing.T, name string, pin bool) *nfsPeer {
	t.Helper()
	addr := freeTCPAddr(t)
	return &nfsPeer{peer: newPeerWith(t, name, freeAddr(t), addr, pin), nfs: addr}
}

// nfsPort is the port of p's NFS server.
func (p *nfsPeer) nfsPort() string {
	_, port, err := net.SplitHostPort(p.nfs)
	if err != nil {
		p.t.Fatalf("nfs address %q: %v", p.nfs, err)
	}
	return port
}

// servesNFS says whether something accepts TCP connections on p's NFS
// address within limit.
func (p *nfsPeer) servesNFS(limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for {
		c, err := net.DialTimeout("tcp", p.nfs, time.Second)
		if err == nil {
			c.Close()
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// seqText is what busybox `seq 1 n` prints.
func seqText(n int) []byte {
	var b bytes.Buffer
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "%d\n", i)
	}
	return b.Bytes()
}
