package e2e

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// freeAddr returns a 127.0.0.1 UDP address nothing listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

// introduce makes a know b (with b's address, if it listens).
func introduce(a, b *peer) {
	args := []string{"peer", "add", b.name, b.id}
	if b.listen != "" {
		args = append(args, b.listen)
	}
	a.mustRun(args...)
}

func waitFile(t *testing.T, p *peer, rel string, want []byte, limit time.Duration) {
	t.Helper()
	p.waitFor(fmt.Sprintf("%s on %s", rel, p.name), limit, func() bool {
		got, err := os.ReadFile(filepath.Join(p.arena, rel))
		return err == nil && bytes.Equal(got, want)
	})
}

// TestDaemonsReplicate: files created on A appear byte-identical on B and
// on C, where C is deaf (dials out only) and never meets A: B relays A's
// history, verified with A's key, and serves the bytes.
func TestDaemonsReplicate(t *testing.T) {
	a := newNamedPeer(t, "alpha", freeAddr(t))
	b := newNamedPeer(t, "bravo", freeAddr(t))
	c := newNamedPeer(t, "charlie", "")
	introduce(a, b)
	introduce(b, a)
	introduce(b, c)
	introduce(c, b)
	big := bytesOf(5<<20+77, 42)
	os.WriteFile(filepath.Join(a.arena, "small.txt"), []byte("hello from alpha\n"), 0o644)
	os.MkdirAll(filepath.Join(a.arena, "media", "empty"), 0o755)
	os.WriteFile(filepath.Join(a.arena, "media", "big.bin"), big, 0o644)
	for _, p := range []*peer{a, b, c} {
		p.start()
	}
	waitFile(t, b, "small.txt", []byte("hello from alpha\n"), 20*time.Second)
	waitFile(t, b, "media/big.bin", big, 20*time.Second)
	waitFile(t, c, "media/big.bin", big, 20*time.Second)
	if fi, err := os.Stat(filepath.Join(c.arena, "media", "empty")); err != nil || !fi.IsDir() {
		t.Fatalf("empty directory not replicated to c: %v", err)
	}
	// B sees both peers connected (C dialled it: C is deaf).
	st := b.status()
	if len(st.Peers) != 2 || !st.Peers[0].Connected || !st.Peers[1].Connected {
		t.Fatalf("status peers on b: %+v", st.Peers)
	}
	// An edit on the deaf peer travels back to A through B.
	os.WriteFile(filepath.Join(c.arena, "small.txt"), []byte("edited on charlie\n"), 0o644)
	waitFile(t, a, "small.txt", []byte("edited on charlie\n"), 20*time.Second)
	// A's log, as stored on C, verifies against A's key.
	out := c.mustRun("log", "--verify")
	if !bytes.Contains([]byte(out), []byte("ok")) {
		t.Fatalf("verify on c: %s", out)
	}
	for _, p := range []*peer{a, b, c} {
		p.stop()
	}
}
