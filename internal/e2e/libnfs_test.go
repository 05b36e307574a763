package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/realizefs/realize/internal/libnfstest"
)

// TestLibnfsOverUnreal: a second, independent NFS client (libnfs) lists
// B's export, copies an unreal file out of it (fetched on demand) and a
// new file into it, which then reaches A.
func TestLibnfsOverUnreal(t *testing.T) {
	ls, cp := libnfstest.Tool(t, "nfs-ls"), libnfstest.Tool(t, "nfs-cp")
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
	if out := libnfstest.Run(t, ls, libnfstest.URL(nfsAddr, "/")); !strings.Contains(out, "home") || !strings.Contains(out, "conflicts") {
		t.Fatalf("nfs-ls /:\n%s", out)
	}
	if out := libnfstest.Run(t, ls, libnfstest.URL(nfsAddr, "/home")); !strings.Contains(out, "photo.raw") {
		t.Fatalf("nfs-ls /home:\n%s", out)
	}
	dst := filepath.Join(t.TempDir(), "photo.raw")
	libnfstest.Run(t, cp, libnfstest.URL(nfsAddr, "/home/photo.raw"), dst)
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, data) {
		t.Fatal("nfs-cp of an unreal file: bytes differ")
	}
	if _, err := os.Lstat(filepath.Join(b.arena, "photo.raw")); err == nil {
		t.Fatal("reading made photo.raw real on B")
	}
	src := filepath.Join(t.TempDir(), "up.txt")
	os.WriteFile(src, []byte("uploaded with libnfs\n"), 0o644)
	libnfstest.Run(t, cp, src, libnfstest.URL(nfsAddr, "/share/home/up.txt"))
	waitFile(t, a, "up.txt", []byte("uploaded with libnfs\n"), 20*time.Second)
}
