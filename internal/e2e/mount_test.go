package e2e

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMountBadInput: each refusal is one clear sentence and changes
// nothing; --dry-run prints the exact command.
func TestMountBadInput(t *testing.T) {
	addr := freeTCPAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	p := newPeerWith(t, "mounter", "", addr, false)
	empty, full := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(full, "keep.txt"), []byte("x"), 0o644)

	_, errs, code := p.run("mount", "--mode", "nfs", empty)
	if code != 1 || !strings.Contains(errs, "not running") {
		t.Fatalf("daemon down: exit %d, %q", code, errs)
	}
	p.start()
	_, errs, code = p.run("mount", full)
	if code != 1 || !strings.Contains(errs, "not empty") {
		t.Fatalf("non-empty dir: exit %d, %q", code, errs)
	}
	if b, _ := os.ReadFile(filepath.Join(full, "keep.txt")); string(b) != "x" {
		t.Fatal("the non-empty directory was changed")
	}
	_, errs, code = p.run("mount", filepath.Join(empty, "missing"))
	if code != 1 || !strings.Contains(errs, "not a directory") {
		t.Fatalf("missing dir: exit %d, %q", code, errs)
	}
	_, errs, code = p.run("mount", "--mode", "fuse", empty)
	if code != 2 || !strings.Contains(errs, "overlay or nfs") {
		t.Fatalf("unknown mode: exit %d, %q", code, errs)
	}
	out, errs, code := p.run("mount", "--dry-run", empty)
	want := "port=" + port + ",mountport=" + port
	if code != 0 || !strings.Contains(out, want) || !strings.Contains(out, empty) {
		t.Fatalf("dry run: exit %d, %q %q (want %q)", code, out, errs, want)
	}
	_, errs, code = p.run("umount", empty)
	if code != 1 || !strings.Contains(errs, "nothing is mounted") {
		t.Fatalf("umount of a plain dir: exit %d, %q", code, errs)
	}
}
