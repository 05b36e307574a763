package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestConflictVersionStaysCached: a conflict version B read into its cache
// (through conflicts/ in its NFS export) is not evicted under quota
// pressure while the conflict is listed, although another peer holds the
// same bytes; once B resolves the conflict, the same pressure evicts it
// (SPEC §4.5: conflict versions are never evicted; decision 0015: the
// cache stops protecting a dropped version at its next refresh).
//
// The losing content L is also at y.bin on A, so B knows a peer that
// holds it: without the conflict rule the last-copy rule alone would not
// keep it (A, having fetched the winner, no longer holds L at x.bin).
func TestConflictVersionStaysCached(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the NFS reader and the cache's conflict list to go idle")
	}
	a := newPeerWith(t, "alpha", freeAddr(t), "", true)
	nfsAddr := freeTCPAddr(t)
	b := newPeerWith(t, "bravo", freeAddr(t), nfsAddr, false)
	const max, size = 8 << 20, 3 << 20
	setCacheMax(t, b, "8MiB")
	introduce(a, b)
	introduce(b, a)
	loser, winner := bytesOf(size, 31), bytesOf(size, 32)
	// Fresh fillers for each round of pressure: bytes read before may be
	// served from the cache's memory or disk without asking for room.
	fillers := make([][]byte, 8)
	old := time.Now().Add(-time.Hour) // A's version loses: the later mtime wins
	for _, name := range []string{"x.bin", "y.bin"} {
		p := filepath.Join(a.arena, name)
		os.WriteFile(p, loser, 0o644)
		os.Chtimes(p, old, old)
	}
	for i := range fillers {
		fillers[i] = bytesOf(size, uint64(40+i))
		os.WriteFile(filepath.Join(a.arena, fmt.Sprintf("g%d.bin", i)), fillers[i], 0o644)
	}
	os.WriteFile(filepath.Join(b.arena, "x.bin"), winner, 0o644)
	a.start()
	b.start()
	var version string
	b.waitFor("the conflict on x.bin and the fillers on B", 60*time.Second, func() bool {
		if _, others := versionsOf(b, "x.bin"); len(others) == 1 {
			version = others[0]
		}
		st, ok := b.pathStatus(fmt.Sprintf("home:g%d.bin", len(fillers)-1))
		return version != "" && ok && st.State == "remote"
	})
	if got, _ := os.ReadFile(filepath.Join(b.arena, "x.bin")); !bytes.Equal(got, winner) {
		t.Fatal("B's x.bin is not B's version: the test expects B's version to win")
	}
	// y.bin holds L: its status tells how much of L B's cache holds.
	cachedL := func() int64 {
		st, _ := b.pathStatus("home:y.bin")
		return st.CachedBytes
	}
	if c := cachedL(); c != 0 {
		t.Fatalf("L is cached before it is read: %d bytes", c)
	}

	tg := nfsMount(t, nfsAddr, "/")
	got, err := nfsRead(tg, "/conflicts/home/x.bin/"+version+".bin", 0, size)
	if err != nil || !bytes.Equal(got, loser) {
		t.Fatalf("reading the conflict version: %d bytes, %v", len(got), err)
	}
	b.waitFor("the conflict version cached", 10*time.Second, func() bool { return cachedL() == size })
	// The daemon keeps a file read through NFS open (so, protected) for 5 s
	// after its last read: let that pass, so only the conflict rule holds L.
	time.Sleep(6 * time.Second)

	readFillers := func(when string, from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			f := fillers[i]
			got, err := nfsRead(tg, fmt.Sprintf("/home/g%d.bin", i), 0, size)
			if err != nil || !bytes.Equal(got, f) {
				t.Fatalf("%s: g%d.bin: %d bytes, %v", when, i, len(got), err)
			}
			if used := b.cache().Cache.UsedBytes; used > max+1<<20 {
				t.Fatalf("%s: the cache holds %d bytes, max %d", when, used, max)
			}
		}
	}
	readFillers("while listed", 0, 4)
	if st := b.cache(); st.Cache.FetchedBytes < size+max-size {
		t.Fatalf("fetched %d bytes: the fillers did not put the cache under pressure", st.Cache.FetchedBytes)
	}
	if c := cachedL(); c != size {
		t.Fatalf("the listed conflict version lost %d of its %d cached bytes", size-c, size)
	}

	b.mustRun("resolve", "home:x.bin") // keeps what the path shows: drops L
	b.waitFor("the conflict resolved on B", 20*time.Second, func() bool { return len(b.conflicts()) == 0 })
	// Once the cache's list of conflict versions is refreshed (at most 5 s
	// old), the same pressure evicts L.
	time.Sleep(6 * time.Second)
	readFillers("after the resolution", 4, 8)
	if c := cachedL(); c == size {
		t.Fatalf("the resolved conflict version is still cached in full after %d MiB more were read", 4*size>>20)
	} else {
		t.Logf("after the resolution L keeps %d of %d bytes in the cache", c, size)
	}
}
