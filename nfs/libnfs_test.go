package nfs

import (
	"bytes"
	"context"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/realizefs/realize/internal/libnfstest"
)

// Tests with Debian's libnfs-utils (nfs-ls, nfs-cp): a second, independent
// client (libnfs), speaking to MOUNT and NFS on the one port.

func TestLibnfsLs(t *testing.T) {
	ls := libnfstest.Tool(t, "nfs-ls")
	r := serve(t, sampleTree(), openDB(t))
	out := libnfstest.Run(t, ls, libnfstest.URL(r.addr, "/"))
	for _, n := range []string{"docs", "photos", "conflicts"} {
		if !strings.Contains(out, n) {
			t.Errorf("nfs-ls / lacks %s:\n%s", n, out)
		}
	}
	out = libnfstest.Run(t, ls, libnfstest.URL(r.addr, "/docs"))
	for _, n := range []string{"readme.txt", "bin", "link", "sub"} {
		if !strings.Contains(out, n) {
			t.Errorf("nfs-ls /docs lacks %s:\n%s", n, out)
		}
	}
	if !strings.Contains(out, "-rw-r--r--") || !strings.Contains(out, "drwxr-xr-x") {
		t.Errorf("nfs-ls /docs modes:\n%s", out)
	}
	out = libnfstest.Run(t, ls, "-R", libnfstest.URL(r.addr, "/.all/docs"))
	if !strings.Contains(out, "file.txt") {
		t.Errorf("nfs-ls -R /.all/docs lacks sub/deep/file.txt:\n%s", out)
	}
}

func TestLibnfsCp(t *testing.T) {
	cp := libnfstest.Tool(t, "nfs-cp")
	tr := sampleTree()
	big := make([]byte, 3<<20+17)
	rand.New(rand.NewSource(2)).Read(big)
	tr.arena("photos").putFile("big.bin", big, false)
	r := serve(t, tr, openDB(t))
	dir := t.TempDir()

	// download
	dst := filepath.Join(dir, "big.bin")
	libnfstest.Run(t, cp, libnfstest.URL(r.addr, "/photos/big.bin"), dst)
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, big) {
		t.Errorf("nfs-cp download: %d bytes of %d", len(got), len(big))
	}
	// upload
	up := make([]byte, 2<<20+5)
	rand.New(rand.NewSource(3)).Read(up)
	src := filepath.Join(dir, "up.bin")
	if err := os.WriteFile(src, up, 0o644); err != nil {
		t.Fatal(err)
	}
	libnfstest.Run(t, cp, src, libnfstest.URL(r.addr, "/docs/up.bin"))
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := tr.arena("docs").get("up.bin")
		if n != nil && bytes.Equal(n.data, up) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("uploaded file in the tree: %v", n != nil)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// and back through the read-only view
	back := filepath.Join(dir, "back.bin")
	libnfstest.Run(t, cp, libnfstest.URL(r.addr, "/.all/docs/up.bin"), back)
	if got, _ := os.ReadFile(back); !bytes.Equal(got, up) {
		t.Errorf("read back through /.all: %d bytes", len(got))
	}
	// the read-only view refuses an upload
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cp, src, libnfstest.URL(r.addr, "/.all/docs/no.bin")).CombinedOutput(); err == nil {
		t.Errorf("upload to /.all succeeded: %s", out)
	}
	if tr.arena("docs").get("no.bin") != nil {
		t.Error("no.bin was created")
	}
}
