package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	nfsc "github.com/willscott/go-nfs-client/nfs"
	"github.com/willscott/go-nfs-client/nfs/rpc"
	"github.com/willscott/go-nfs-client/nfs/xdr"
)

// setCacheMax sets p's cache quota to max (a config size, e.g. "50MiB")
// and leave to 0, in its config file.
func setCacheMax(t *testing.T, p *peer, max string) {
	t.Helper()
	cfg, err := os.ReadFile(p.config)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(cfg), `max = "10%"`, `max = "`+max+`"`, 1)
	s = strings.Replace(s, `leave = "5GB"`, `leave = "0"`, 1)
	if !strings.Contains(s, `max = "`+max+`"`) || !strings.Contains(s, `leave = "0"`) {
		t.Fatal("the config template changed: cannot set cache.max and cache.leave")
	}
	if err := os.WriteFile(p.config, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// exportStat is an NFS FSSTAT reply (RFC 1813 §3.3.18).
type exportStat struct {
	Attr                 nfsc.PostOpAttr
	Total, Free, Avail   uint64 // bytes
	Files, FreeF, AvailF uint64
	InvariantSec         uint32
}

// fsstat asks the export tg is mounted from for its FSSTAT (procedure
// 18, which go-nfs-client has no call for).
func fsstat(tg *nfsc.Target) (*exportStat, error) {
	_, fh, err := tg.Lookup("/")
	if err != nil {
		return nil, err
	}
	res, err := tg.Call(&struct {
		rpc.Header
		Root []byte
	}{rpc.Header{Rpcvers: 2, Prog: nfsc.Nfs3Prog, Vers: nfsc.Nfs3Vers, Proc: 18, Cred: rpc.AuthNull, Verf: rpc.AuthNull}, fh})
	if err != nil {
		return nil, err
	}
	if st, err := xdr.ReadUint32(res); err != nil || st != 0 {
		return nil, fmt.Errorf("FSSTAT status %d (%v)", st, err)
	}
	var out exportStat
	return &out, xdr.Read(res, &out)
}

// checkStatfs: the export's FSSTAT reports the cache quota as total and
// what is left of it as free (SPEC §4.7), against the daemon's own
// status taken just before and after (equal: nothing moved in between).
func checkStatfs(t *testing.T, p *peer, tg *nfsc.Target, max int64, when string) {
	t.Helper()
	for try := 0; ; try++ {
		before := p.cache().Cache
		st, err := fsstat(tg)
		if err != nil {
			t.Fatalf("%s: FSSTAT: %v", when, err)
		}
		after := p.cache().Cache
		if before.UsedBytes != after.UsedBytes && try < 10 {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		used := after.UsedBytes
		if st.Total != uint64(max) || after.LimitBytes != max || st.Free != uint64(max-used) || st.Avail != st.Free {
			t.Fatalf("%s: FSSTAT total %d, free %d, avail %d; the cache holds %d of %d (limit %d)",
				when, st.Total, st.Free, st.Avail, used, max, after.LimitBytes)
		}
		return
	}
}

// TestCacheQuota: with cache max = 50 MiB, reading 200 MiB of unreal
// files through NFS keeps the cache under max plus one block, while an
// unreal file kept open for reading through NFS (read again every second)
// keeps every cached byte: with its peer stopped, it reads in full with
// nothing fetched. The export's statfs reports the quota (total = max,
// free = what is left), before the reads and after.
func TestCacheQuota(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 200 MiB")
	}
	a := newPeerWith(t, "alpha", freeAddr(t), "", true)
	nfsAddr := freeTCPAddr(t)
	b := newPeerWith(t, "bravo", freeAddr(t), nfsAddr, false)
	const max, block = 50 << 20, 1 << 20
	setCacheMax(t, b, "50MiB")
	introduce(a, b)
	introduce(b, a)
	const n, size, heldSize = 4, 50 << 20, 8 << 20
	files := make([][]byte, n)
	for i := range files {
		files[i] = bytesOf(size, uint64(100+i))
		os.WriteFile(filepath.Join(a.arena, fmt.Sprintf("f%d.bin", i)), files[i], 0o644)
	}
	held := bytesOf(heldSize, 99)
	os.WriteFile(filepath.Join(a.arena, "held.bin"), held, 0o644)
	a.start()
	b.start()
	b.waitFor("B lists the files", 60*time.Second, func() bool {
		st, ok := b.pathStatus(fmt.Sprintf("home:f%d.bin", n-1))
		st2, ok2 := b.pathStatus("home:held.bin")
		return ok && st.State == "remote" && ok2 && st2.State == "remote"
	})
	tg := nfsMount(t, nfsAddr, "/")
	checkStatfs(t, b, tg, max, "before any read")

	// held.bin is read in full, then kept open on its own connection: a
	// READ every second keeps the daemon's reader (idle after 5 s) open.
	th := nfsMount(t, nfsAddr, "/")
	hf, err := th.Open("/home/held.bin")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := readFull(hf, heldSize); err != nil || !bytes.Equal(got, held) {
		t.Fatalf("held.bin: %d bytes, %v", len(got), err)
	}
	b.waitFor("held.bin cached in full", 10*time.Second, func() bool {
		st, _ := b.pathStatus("home:held.bin")
		return st.CachedBytes == heldSize
	})
	stop := keepReading(t, hf)

	for i := range files {
		for off := 0; off < size; off += 8 << 20 {
			got, err := nfsRead(tg, fmt.Sprintf("/home/f%d.bin", i), int64(off), min(8<<20, size-off))
			if err != nil || !bytes.Equal(got, files[i][off:off+len(got)]) || len(got) == 0 {
				t.Fatalf("f%d at %d: %d bytes, %v", i, off, len(got), err)
			}
			if used := b.cache().Cache.UsedBytes; used > max+block {
				t.Fatalf("cache holds %d bytes after reading f%d to %d MiB; max is %d", used, i, off>>20, max)
			}
		}
	}
	if st := b.cache(); st.Cache.FetchedBytes < n*size {
		t.Fatalf("fetched only %d bytes for %d read: reads were not fetched on demand", st.Cache.FetchedBytes, n*size)
	}
	if st, _ := b.pathStatus("home:held.bin"); st.CachedBytes != heldSize {
		t.Fatalf("the open file kept %d of its %d cached bytes (state %s)", st.CachedBytes, heldSize, st.State)
	}
	// With A gone, the open file still reads in full, from the cache.
	a.stop()
	before := b.cache().Cache.FetchedBytes
	if got, err := readFull(hf, heldSize); err != nil || !bytes.Equal(got, held) {
		t.Fatalf("held.bin with its peer stopped: %d bytes, %v", len(got), err)
	}
	if d := b.cache().Cache.FetchedBytes - before; d != 0 {
		t.Fatalf("reading the open file fetched %d bytes", d)
	}
	stop()
	checkStatfs(t, b, tg, max, "after the reads")
}

// readFull reads size bytes of f from offset 0.
func readFull(f *nfsc.File, size int) ([]byte, error) {
	buf := make([]byte, size)
	got := 0
	for got < size {
		k, err := f.ReadAt(buf[got:], int64(got))
		got += k
		if k == 0 || err != nil && got < size {
			return buf[:got], fmt.Errorf("read at %d: %v", got, err)
		}
	}
	return buf, nil
}

// keepReading reads one byte of f every second until the returned stop
// is called: NFS has no open, the daemon keeps a file open while it is
// read. A failed read fails the test.
func keepReading(t *testing.T, f *nfsc.File) (stop func()) {
	done, quit := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		one := make([]byte, 1)
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
				if _, err := f.ReadAt(one, 0); err != nil {
					t.Errorf("keeping the file open: %v", err)
					return
				}
			}
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { close(quit); <-done }) }
	t.Cleanup(stop)
	return stop
}
