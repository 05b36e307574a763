package e2e

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// libnfsTool finds a libnfs-utils binary or skips (CI installs them).
func libnfsTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not found: apt-get install -y libnfs-utils", name)
	}
	return p
}

func libnfsURL(addr, path string) string {
	_, port, _ := net.SplitHostPort(addr)
	return "nfs://127.0.0.1" + path + "?nfsport=" + port + "&mountport=" + port + "&auto-traverse-mounts=0"
}

func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestLibnfsOverUnreal: a second, independent NFS client (libnfs) lists
// B's export, copies an unreal file out of it (fetched on demand) and a
// new file into it, which then reaches A.
func TestLibnfsOverUnreal(t *testing.T) {
	ls, cp := libnfsTool(t, "nfs-ls"), libnfsTool(t, "nfs-cp")
	a := newPeerWith(t, "alpha", freeAddr(t), "", true)
	nfsAddr := freeTCPAddr(t)
	b := newPeerWith(t, "bravo", freeAddr(t), nfsAddr, false)
	introduce(a, b)
	introduce(b, a)
	data := bytesOf(5<<20+3, 21)
	os.WriteFile(filepath.Join(a.arena, "photo.raw"), data, 0o644)
	a.start()
	b.start()
	b.waitFor("B lists photo.raw", 20*time.Second, func() bool {
		st, ok := b.pathStatus("home:photo.raw")
		return ok && st.State == "remote"
	})
	if out := runTool(t, ls, libnfsURL(nfsAddr, "/")); !strings.Contains(out, "home") || !strings.Contains(out, "conflicts") {
		t.Fatalf("nfs-ls /:\n%s", out)
	}
	if out := runTool(t, ls, libnfsURL(nfsAddr, "/home")); !strings.Contains(out, "photo.raw") {
		t.Fatalf("nfs-ls /home:\n%s", out)
	}
	dst := filepath.Join(t.TempDir(), "photo.raw")
	runTool(t, cp, libnfsURL(nfsAddr, "/home/photo.raw"), dst)
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, data) {
		t.Fatal("nfs-cp of an unreal file: bytes differ")
	}
	if _, err := os.Lstat(filepath.Join(b.arena, "photo.raw")); err == nil {
		t.Fatal("reading made photo.raw real on B")
	}
	src := filepath.Join(t.TempDir(), "up.txt")
	os.WriteFile(src, []byte("uploaded with libnfs\n"), 0o644)
	runTool(t, cp, src, libnfsURL(nfsAddr, "/share/home/up.txt"))
	waitFile(t, a, "up.txt", []byte("uploaded with libnfs\n"), 20*time.Second)
}
