package e2e

import (
	"bytes"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/zeebo/blake3"

	nfsc "github.com/willscott/go-nfs-client/nfs"
	"github.com/willscott/go-nfs-client/nfs/rpc"
)

// cacheWait is how long the daemon's cache waits for a block before a
// read fails (unreal.CacheOptions.Wait, default 10 s; the daemon keeps
// the default). A READ needing bytes no peer sends must fail within it,
// plus slack for a busy machine.
const (
	cacheWait = 10 * time.Second
	waitSlack = 5 * time.Second
)

type readResult struct {
	n   int
	err error
}

// TestNFSPeerLostMidRead: B reads an uncached 64 MiB unreal file through
// its export, A (its only holder) is killed with SIGKILL after the first
// part; reading on, the first READ needing bytes B does not have fails
// with NFS3ERR_IO within the cache's bounded wait, as does a READ far
// ahead, while bytes read before are still served. Once A is back, the same READs return the right bytes, and the
// whole file reads back with the hash the household recorded.
func TestNFSPeerLostMidRead(t *testing.T) {
	const size, chunk = 64 << 20, 1 << 20
	// go-nfs-client sends a call again after 5 s without an answer: a
	// first READ that never ends would hide behind a quick second one.
	// Each READ is sent once here, so its time is the server's.
	old := rpc.DefaultReadTimeout
	rpc.DefaultReadTimeout = time.Minute
	t.Cleanup(func() { rpc.DefaultReadTimeout = old })
	big := bytesOf(size, 31)
	a, b, tg := twoPeersNFS(t, map[string][]byte{"big.bin": big}, "big.bin")
	f, err := tg.Open("/home/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, chunk)
	// read reads a chunk at off; reaching the end is no error.
	read := func(off int) (readResult, time.Duration) {
		return within(t, fmt.Sprintf("READ at %d", off), 2*(cacheWait+waitSlack), func() readResult {
			n, err := f.ReadAt(buf, int64(off))
			if err == io.EOF && off+n == size {
				err = nil
			}
			return readResult{n, err}
		})
	}
	const first = 8 << 20
	for off := 0; off < first; off += chunk {
		if r, _ := read(off); r.err != nil || !bytes.Equal(buf[:r.n], big[off:off+chunk]) {
			t.Fatalf("READ at %d with A there: %d bytes, %v", off, r.n, r.err)
		}
	}
	a.kill()
	t.Logf("A killed after %d MiB read; B fetched %d bytes", first>>20, b.cache().Cache.FetchedBytes)

	// Reading on: what B already has (read ahead) is served, then a READ
	// fails with EIO, promptly.
	failedAt := -1
	for off := first; off < size; off += chunk {
		r, took := read(off)
		if took > cacheWait+waitSlack {
			t.Errorf("READ at %d took %v", off, took)
		}
		if r.err != nil {
			if st := nfsStatus(r.err); st != nfsc.NFS3ErrIO {
				t.Fatalf("READ at %d with A gone: %v (status %d), want NFS3ERR_IO", off, r.err, st)
			}
			t.Logf("READ at %d MiB failed after %v: %v", off>>20, took.Round(time.Millisecond), r.err)
			failedAt = off
			break
		}
		if !bytes.Equal(buf[:r.n], big[off:off+chunk]) {
			t.Fatalf("READ at %d with A gone: wrong bytes", off)
		}
	}
	if failedAt < 0 {
		t.Fatal("the whole file was read with its only holder gone")
	}
	// What B read before is served without any peer.
	if r, took := read(0); r.err != nil || !bytes.Equal(buf[:r.n], big[:chunk]) || took > waitSlack {
		t.Errorf("READ of cached bytes with A gone: %d bytes, %v, after %v", r.n, r.err, took)
	}
	const far = size - chunk
	if r, took := read(far); nfsStatus(r.err) != nfsc.NFS3ErrIO || took > cacheWait+waitSlack {
		t.Errorf("READ far ahead with A gone: %v after %v, want NFS3ERR_IO within %v", r.err, took, cacheWait+waitSlack)
	} else {
		t.Logf("READ far ahead failed after %v", took.Round(time.Millisecond))
	}

	// B may not notice A's death until A, restarted, resets the old
	// connection: wait for a connection made after the restart.
	restarted := time.Now()
	a.start()
	b.waitFor("B connected to A again", 60*time.Second, func() bool {
		st := b.status()
		return len(st.Peers) == 1 && st.Peers[0].Connected && st.Peers[0].Since.After(restarted)
	})
	for _, off := range []int{failedAt, far} {
		if r, _ := read(off); r.err != nil || !bytes.Equal(buf[:r.n], big[off:off+chunk]) {
			t.Fatalf("READ at %d with A back: %d bytes, %v", off, r.n, r.err)
		}
	}
	all, err := nfsRead(tg, "/home/big.bin", 0, size)
	if err != nil {
		t.Fatalf("reading the whole file: %v", err)
	}
	st, _ := b.pathStatus("home:big.bin")
	if got := fmt.Sprintf("%x", blake3.Sum256(all)); got != st.Hash || len(all) != size {
		t.Fatalf("the file read through B: %d bytes, hash %s; recorded %s", len(all), got, st.Hash)
	}
	a.stop()
	b.stop()
}
