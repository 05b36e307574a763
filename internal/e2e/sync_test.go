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
	// A's acks reach it: A knows B has stored all of A's log.
	a.waitFor("b's ack of a's log", 10*time.Second, func() bool {
		s := a.status()
		return len(s.Peers) == 1 && s.Peers[0].Connected && s.Peers[0].Behind == 0
	})
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

// TestKillMidTransferResumes: B is killed with SIGKILL while it fetches a
// large file from A; after a restart the transfer picks up the blocks it
// had (counted as reused, not received again) and the file arrives
// byte-identical. Nothing half-written ever appears at the file's path.
func TestKillMidTransferResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	a := newNamedPeer(t, "alpha", freeAddr(t))
	b := newNamedPeer(t, "bravo", freeAddr(t))
	introduce(a, b)
	introduce(b, a)
	big := bytesOf(400<<20, 7)
	os.WriteFile(filepath.Join(a.arena, "big.bin"), big, 0o644)
	a.start()
	a.waitIndexed(60 * time.Second)
	b.start()
	// Wait until part of the file is in B's temporary file, then kill B.
	var partial int64
	b.waitFor("a partial transfer", 30*time.Second, func() bool {
		matches, _ := filepath.Glob(filepath.Join(b.arena, ".realize-tmp-*"))
		for _, m := range matches {
			if fi, err := os.Stat(m); err == nil {
				if n := allocated(fi); n > 8<<20 {
					partial = n
					return true
				}
			}
		}
		return false
	})
	b.kill()
	if _, err := os.Stat(filepath.Join(b.arena, "big.bin")); err == nil {
		t.Fatal("the file appeared before it was complete")
	}
	t.Logf("killed with %d MiB on disk", partial>>20)
	b.start()
	waitFile(t, b, "big.bin", big, 60*time.Second)
	st := b.status()
	if st.Arenas[0].Reused == 0 || st.Arenas[0].Received >= int64(len(big)) {
		t.Fatalf("after restart: received %d, reused %d of %d: not resumed", st.Arenas[0].Received, st.Arenas[0].Reused, len(big))
	}
	t.Logf("after restart: received %d MiB, reused %d MiB", st.Arenas[0].Received>>20, st.Arenas[0].Reused>>20)
	if matches, _ := filepath.Glob(filepath.Join(b.arena, ".realize-tmp-*")); len(matches) != 0 {
		t.Errorf("temporary files left: %v", matches)
	}
	a.stop()
	b.stop()
}
