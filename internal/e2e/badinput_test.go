package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestDamagedDatabaseRefused: a daemon never starts on a database it does
// not recognise; it says why, exits 1, and leaves the file alone.
func TestDamagedDatabaseRefused(t *testing.T) {
	cases := []struct {
		name  string
		write func(path string) error
		want  string
	}{
		{"garbage", func(p string) error { return os.WriteFile(p, bytes.Repeat([]byte("not a db "), 1000), 0o600) }, "not a Realize database"},
		{"foreign bbolt", func(p string) error {
			db, err := bolt.Open(p, 0o600, nil)
			if err != nil {
				return err
			}
			db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("other")); return err })
			return db.Close()
		}, "not a Realize database"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newPeer(t)
			os.MkdirAll(p.data, 0o700)
			dbPath := filepath.Join(p.data, "realize.db")
			if err := tc.write(dbPath); err != nil {
				t.Fatal(err)
			}
			before, _ := os.ReadFile(dbPath)
			out, errs, code := runWithTimeout(t, 10*time.Second, p.config, "daemon")
			if code != 1 || !strings.Contains(out+errs, tc.want) {
				t.Fatalf("exit %d, output %q %q; want exit 1 and %q", code, out, errs, tc.want)
			}
			if after, _ := os.ReadFile(dbPath); !bytes.Equal(before, after) {
				t.Fatal("the refused database was modified")
			}
		})
	}
}

// TestUnreadablePathsReported runs the daemon as an unprivileged user so
// that permissions apply: an unreadable file and an unreadable directory
// are reported in status, nothing else is disturbed, and both are indexed
// once readable.
func TestUnreadablePathsReported(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run the daemon as another user")
	}
	const nobody = 65534
	p := newPeer(t)
	for _, d := range []string{filepath.Dir(p.config), p.arena} {
		chownTree(t, d, nobody)
	}
	os.WriteFile(filepath.Join(p.arena, "ok.txt"), []byte("fine"), 0o644)
	os.WriteFile(filepath.Join(p.arena, "secret.txt"), []byte("hidden"), 0o000)
	os.MkdirAll(filepath.Join(p.arena, "locked", "inner"), 0o755)
	os.WriteFile(filepath.Join(p.arena, "locked", "inner", "f"), []byte("f"), 0o644)
	chownTree(t, p.arena, nobody)
	os.Chmod(filepath.Join(p.arena, "locked"), 0o000)
	// Let the parent temp directory be traversed by nobody.
	for d := filepath.Dir(p.config); d != "/"; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 == 0 {
			os.Chmod(d, fi.Mode().Perm()|0o001)
		}
	}

	cmd := exec.Command(binary, "--config", p.config, "daemon")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	p.logs = &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.daemon, p.exited = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(p.exited) }()
	t.Cleanup(p.kill)
	p.waitFor("indexing as nobody", 15*time.Second, func() bool {
		out, _, code := p.run("status", "--json")
		return code == 0 && strings.Contains(out, `"last_scan"`) && strings.Contains(out, "secret.txt")
	})
	out := p.mustRun("status", "--json")
	for _, want := range []string{"secret.txt", "locked", "permission denied"} {
		if !strings.Contains(out, want) {
			t.Errorf("status does not mention %q:\n%s", want, out)
		}
	}
	paths := map[string]bool{}
	for _, r := range p.log() {
		paths[r.Path] = true
	}
	if !paths["ok.txt"] || paths["secret.txt"] || paths["locked/inner/f"] {
		t.Fatalf("log paths %v", paths)
	}
	// Once readable, they are indexed; nothing was recorded as deleted.
	os.Chmod(filepath.Join(p.arena, "secret.txt"), 0o644)
	os.Chmod(filepath.Join(p.arena, "locked"), 0o755)
	os.WriteFile(filepath.Join(p.arena, "nudge"), []byte("x"), 0o644) // a watcher event in the root
	os.Chown(filepath.Join(p.arena, "nudge"), nobody, nobody)
	p.mustRun("status") // daemon alive
	p.waitFor("secret.txt indexed after chmod", 400*time.Second, func() bool {
		for _, r := range p.log() {
			if r.Path == "secret.txt" {
				return true
			}
		}
		return false
	})
	for _, r := range p.log() {
		if r.Op == "remove" || r.Op == "rmdir" {
			t.Errorf("unexpected %s %s", r.Op, r.Path)
		}
	}
}

func chownTree(t *testing.T, root string, uid int) {
	t.Helper()
	filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err == nil {
			err = os.Lchown(p, uid, uid)
		}
		return err
	})
}

func runWithTimeout(t *testing.T, limit time.Duration, config string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"--config", config}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(limit):
		cmd.Process.Kill()
		<-done
		t.Fatalf("realize %v did not exit within %v", args, limit)
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}
