package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	nfsc "github.com/willscott/go-nfs-client/nfs"
	"github.com/willscott/go-nfs-client/nfs/rpc"
)

// nfsMount mounts the export at addr with go-nfs-client (MOUNT and NFS on
// one port, no portmapper).
func nfsMount(t *testing.T, addr, dir string) *nfsc.Target {
	t.Helper()
	var c *rpc.Client
	var err error
	for range 5 { // the client binds a random local port: retry if taken
		if c, err = rpc.DialTCP("tcp", addr, false); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	tg, err := (&nfsc.Mount{Client: c}).Mount(dir, rpc.AuthNull)
	if err != nil {
		t.Fatalf("mount %s: %v", dir, err)
	}
	return tg
}

func nfsRead(tg *nfsc.Target, path string, off int64, n int) ([]byte, error) {
	f, err := tg.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// A server caps each READ (go-nfs: 16 MiB), so read until done.
	buf := make([]byte, n)
	got := 0
	for got < n {
		k, err := f.ReadAt(buf[got:], off+int64(got))
		got += k
		if err == io.EOF || k == 0 && err == nil {
			break
		}
		if err != nil {
			return buf[:got], err
		}
	}
	return buf[:got], nil
}

func nfsWrite(t *testing.T, tg *nfsc.Target, path string, data []byte) {
	t.Helper()
	f, err := tg.OpenFile(path, 0o644)
	if err != nil {
		t.Fatalf("open %s for writing: %v", path, err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close %s: %v", path, err)
	}
}

type cacheStatus struct {
	Cache struct {
		UsedBytes    int64 `json:"used_bytes"`
		LimitBytes   int64 `json:"limit_bytes"`
		FetchedBytes int64 `json:"fetched_bytes"`
	} `json:"cache"`
}

func (p *peer) cache() cacheStatus {
	p.t.Helper()
	var st cacheStatus
	if err := json.Unmarshal([]byte(p.mustRun("status", "--json")), &st); err != nil {
		p.t.Fatal(err)
	}
	return st
}

// TestNFSOverUnreal drives B's NFS export (B holds nothing) with an NFS
// client: listing, reading unreal files (only the blocks read are
// fetched; a second read fetches nothing), writing new and unreal files,
// renaming an unreal file, a symlink; all of it reaches A. With A gone a
// read of uncached bytes fails promptly and succeeds once A is back;
// file handles survive a restart of B.
func TestNFSOverUnreal(t *testing.T) {
	a := newPeerWith(t, "alpha", freeAddr(t), "", true)
	nfsAddr := freeTCPAddr(t)
	b := newPeerWith(t, "bravo", freeAddr(t), nfsAddr, false)
	introduce(a, b)
	introduce(b, a)
	big, other := bytesOf(24<<20, 11), bytesOf(16<<20, 12)
	os.MkdirAll(filepath.Join(a.arena, "docs"), 0o755)
	os.WriteFile(filepath.Join(a.arena, "small.txt"), []byte("small from alpha\n"), 0o644)
	os.WriteFile(filepath.Join(a.arena, "big.bin"), big, 0o644)
	os.WriteFile(filepath.Join(a.arena, "other.bin"), other, 0o644)
	os.WriteFile(filepath.Join(a.arena, "docs", "x.txt"), []byte("x\n"), 0o644)
	a.start()
	b.start()
	b.waitFor("B lists other.bin", 20*time.Second, func() bool {
		st, ok := b.pathStatus("home:other.bin")
		return ok && st.State == "remote"
	})
	tg := nfsMount(t, nfsAddr, "/")
	ents, err := tg.ReadDirPlus("/home")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	for _, want := range []string{"big.bin", "docs", "other.bin", "small.txt"} {
		if !slices.Contains(got, want) {
			t.Fatalf("listing of /home: %v lacks %s", got, want)
		}
	}

	// A 1 MiB read in the middle fetches about that, not 24 MiB.
	before := b.cache().Cache.FetchedBytes
	part, err := nfsRead(tg, "/home/big.bin", 10<<20, 1<<20)
	if err != nil || !bytes.Equal(part, big[10<<20:11<<20]) {
		t.Fatalf("partial read: %d bytes, %v", len(part), err)
	}
	fetched := b.cache().Cache.FetchedBytes - before
	if fetched < 1<<20 || fetched > 8<<20 {
		t.Fatalf("a 1 MiB read fetched %d bytes", fetched)
	}
	if st, _ := b.pathStatus("home:big.bin"); st.State != "cached" || st.CachedBytes >= int64(len(big)) {
		t.Fatalf("after a partial read: %+v", st)
	}
	// The whole file, then again: the second read fetches nothing.
	all, err := nfsRead(tg, "/home/big.bin", 0, len(big))
	if err != nil || !bytes.Equal(all, big) {
		t.Fatalf("full read: %d bytes, %v", len(all), err)
	}
	before = b.cache().Cache.FetchedBytes
	if all, err = nfsRead(tg, "/home/big.bin", 0, len(big)); err != nil || !bytes.Equal(all, big) {
		t.Fatalf("cached read: %v", err)
	}
	if d := b.cache().Cache.FetchedBytes - before; d != 0 {
		t.Fatalf("reading a cached file fetched %d bytes", d)
	}
	// Damage the cached bytes on disk: detected, refetched, never served.
	st, _ := b.pathStatus("home:big.bin")
	cf, err := os.OpenFile(filepath.Join(b.data, "cache", st.Hash), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	cf.WriteAt(make([]byte, 4096), 5<<20)
	cf.Close()
	if part, err = nfsRead(tg, "/home/big.bin", 5<<20, 1<<20); err != nil || !bytes.Equal(part, big[5<<20:6<<20]) {
		t.Fatalf("read over a damaged cached block: equal=%v, %v", bytes.Equal(part, big[5<<20:6<<20]), err)
	}

	// Writes: a new file, an unreal file (realized first), a rename of an
	// unreal file, a symlink. All become history and reach A.
	nfsWrite(t, tg, "/home/docs/new.txt", []byte("written through nfs\n"))
	waitFile(t, b, "docs/new.txt", []byte("written through nfs\n"), 5*time.Second)
	waitFile(t, a, "docs/new.txt", []byte("written through nfs\n"), 20*time.Second)
	nfsWrite(t, tg, "/home/small.txt", []byte("SMALL"))
	want := []byte("SMALL from alpha\n")
	waitFile(t, b, "small.txt", want, 5*time.Second)
	waitFile(t, a, "small.txt", want, 20*time.Second)
	if err := tg.Rename("/home/docs/x.txt", "/home/docs/y.txt"); err != nil {
		t.Fatalf("rename of an unreal file: %v", err)
	}
	waitFile(t, a, "docs/y.txt", []byte("x\n"), 20*time.Second)
	if _, err := os.Lstat(filepath.Join(a.arena, "docs", "x.txt")); err == nil {
		t.Fatal("x.txt still on A after the rename")
	}
	if err := tg.Setattr("/home/docs/new.txt", nfsc.Sattr3{Size: nfsc.SetSize{SetIt: true, Size: 7}}); err != nil {
		t.Fatalf("truncate: %v", err)
	}
	waitFile(t, a, "docs/new.txt", []byte("written"), 20*time.Second)
	if err := tg.Symlink("y.txt", "/home/docs/link"); err != nil {
		t.Fatalf("symlink: %v", err)
	}
	a.waitFor("symlink on A", 20*time.Second, func() bool {
		target, err := os.Readlink(filepath.Join(a.arena, "docs", "link"))
		return err == nil && target == "y.txt"
	})

	// Part of other.bin is read (and cached) while A is there.
	if part, err := nfsRead(tg, "/home/other.bin", 0, 64<<10); err != nil || !bytes.Equal(part, other[:64<<10]) {
		t.Fatalf("first read of other.bin: %v", err)
	}

	// Handles are stable across a restart of B.
	_, fh, err := tg.Lookup("/home/other.bin")
	if err != nil {
		t.Fatal(err)
	}
	b.stop()
	a.stop()
	b.start()
	tg = nfsMount(t, nfsAddr, "/")
	if attr, err := tg.GetAttr(fh); err != nil || attr.Filesize != uint64(len(other)) {
		t.Fatalf("old handle after restart: %+v, %v", attr, err)
	}

	// A went away mid-file: the rest of other.bin is nowhere reachable.
	// The read fails within a bounded time, and works once A is back.
	start := time.Now()
	if _, err := nfsRead(tg, "/home/other.bin", 12<<20, 4096); nfsStatus(err) != nfsc.NFS3ErrIO {
		t.Fatalf("read of unreachable bytes: %v, want NFS3ERR_IO", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("the failing read took %v", d)
	}
	a.start()
	b.waitFor("read works again", 30*time.Second, func() bool {
		got, err := nfsRead(tg, "/home/other.bin", 0, len(other))
		return err == nil && bytes.Equal(got, other)
	})
}
