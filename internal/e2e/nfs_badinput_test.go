package e2e

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/zeebo/blake3"

	nfsc "github.com/willscott/go-nfs-client/nfs"
)

// nfsMaxFileSize is the largest file size the export announces (FSINFO
// maxfilesize, go-nfs's 2^62); a WRITE ending beyond it is NFS3ERR_FBIG.
const nfsMaxFileSize = 1 << 62

// twoPeersNFS starts A (pinned, holding files) and B (unpinned, serving
// NFS), writes files into A's arena first, and waits until B lists the
// last of them. It returns both and B's mounted export.
func twoPeersNFS(t *testing.T, files map[string][]byte, last string) (a, b *peer, tg *nfsc.Target) {
	t.Helper()
	a = newPeerWith(t, "alpha", freeAddr(t), "", true)
	nfsAddr := freeTCPAddr(t)
	b = newPeerWith(t, "bravo", freeAddr(t), nfsAddr, false)
	introduce(a, b)
	introduce(b, a)
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(a.arena, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	a.start()
	b.start()
	b.waitFor("B lists "+last, 30*time.Second, func() bool {
		st, ok := b.pathStatus("home:" + last)
		return ok && st.State == "remote"
	})
	return a, b, nfsMount(t, nfsAddr, "/")
}

// ownLog is p's own history (what it changed, not what it applied).
func (p *peer) ownLog() []logRecord {
	p.t.Helper()
	var out []logRecord
	for _, r := range p.log() {
		if r.Peer == p.id {
			out = append(out, r)
		}
	}
	return out
}

// changedBesides lists the entries of recs about other paths than path
// (nil if none, and recs has one about path).
func changedBesides(recs []logRecord, path string) []string {
	var other []string
	seen := false
	for _, r := range recs {
		if r.Path == path {
			seen = true
		} else {
			other = append(other, r.Op+" "+r.Path)
		}
	}
	if !seen {
		other = append(other, "(nothing about "+path+")")
	}
	return other
}

func lookupFH(t *testing.T, tg *nfsc.Target, path string) []byte {
	t.Helper()
	_, fh, err := tg.Lookup(path)
	if err != nil {
		t.Fatalf("lookup %s: %v", path, err)
	}
	return fh
}

// TestNFSReadPastEnd: READs through B's export at and beyond the end of
// unreal files (just past EOF, 2^62, 2^63 and 2^64-1, which go-nfs would
// see as negative) return no bytes flagged EOF, and fetch nothing from
// A; a READ straddling the end returns the last bytes.
func TestNFSReadPastEnd(t *testing.T) {
	big, small := bytesOf(8<<20+3, 21), []byte("small unreal file\n")
	_, b, tg := twoPeersNFS(t, map[string][]byte{"big.bin": big, "small.txt": small}, "big.bin")
	cases := []struct {
		file string
		data []byte
		off  uint64
	}{
		{"big.bin", big, uint64(len(big))},
		{"big.bin", big, uint64(len(big)) + 10},
		{"big.bin", big, 1 << 62},
		{"big.bin", big, 1 << 63},
		{"big.bin", big, math.MaxUint64 - 100},
		{"big.bin", big, math.MaxUint64},
		{"small.txt", small, uint64(len(small)) + 10},
		{"small.txt", small, 1 << 62},
		{"small.txt", small, 1 << 63},
	}
	before := b.cache().Cache.FetchedBytes
	for _, tc := range cases {
		fh := lookupFH(t, tg, "/home/"+tc.file)
		for _, count := range []uint32{1, 4096, 1 << 20, 1 << 31} {
			what := fmt.Sprintf("READ %s at %d, %d bytes", tc.file, tc.off, count)
			r, _ := within(t, what, 20*time.Second, func() readReply { return rawRead(t, tg, fh, tc.off, count) })
			if r.status != nfsc.NFS3Ok || !r.eof || len(r.data) != 0 {
				t.Errorf("%s: status %d, eof %v, %d bytes; want OK, EOF, no bytes", what, r.status, r.eof, len(r.data))
			}
		}
	}
	if d := b.cache().Cache.FetchedBytes - before; d != 0 {
		t.Errorf("reads past the end fetched %d bytes", d)
	}
	if st, _ := b.pathStatus("home:big.bin"); st.State != "remote" || st.CachedBytes != 0 {
		t.Errorf("after reads past the end, big.bin on B: %+v", st)
	}
	// A READ straddling the end: the last bytes, EOF; only the last
	// block is fetched.
	fh := lookupFH(t, tg, "/home/big.bin")
	r := rawRead(t, tg, fh, uint64(len(big))-10, 4096)
	if r.status != nfsc.NFS3Ok || !r.eof || !bytes.Equal(r.data, big[len(big)-10:]) {
		t.Errorf("READ straddling the end: status %d, eof %v, %q", r.status, r.eof, r.data)
	}
	if d := b.cache().Cache.FetchedBytes - before; d <= 0 || d > 1<<20 {
		t.Errorf("the last 10 bytes fetched %d bytes", d)
	}
}

// TestNFSWriteFarOffsets: through B's export, a WRITE far past the end
// of a new file makes a sparse real file on B that reaches A with the
// right hash; WRITEs ending past the announced limit (2^62), or at
// offsets of 2^63 and more, are NFS3ERR_FBIG and change nothing: a real
// file keeps its bytes, an unreal one stays unreal (nothing fetched).
func TestNFSWriteFarOffsets(t *testing.T) {
	if testing.Short() {
		t.Skip("moves a 1 GiB sparse file")
	}
	unrealBytes := bytesOf(3<<20, 22)
	a, b, tg := twoPeersNFS(t, map[string][]byte{"unreal.bin": unrealBytes}, "unreal.bin")

	// A sparse file: "head", a hole, "tail" at 1 GiB + 10.
	const far = 1<<30 + 10
	fh, err := tg.Create("/home/sparse.bin", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct {
		off  uint64
		data string
	}{{0, "head"}, {far, "tail"}} {
		if st, n := rawWrite(t, tg, fh, w.off, []byte(w.data)); st != nfsc.NFS3Ok || n != 4 {
			t.Fatalf("WRITE at %d: status %d, %d bytes", w.off, st, n)
		}
	}
	h := blake3.New()
	h.Write([]byte("head"))
	zeros := make([]byte, 1<<20)
	for left := int64(far - 4); left > 0; left -= int64(len(zeros)) {
		h.Write(zeros[:min(left, int64(len(zeros)))])
	}
	h.Write([]byte("tail"))
	want := fmt.Sprintf("%x", h.Sum(nil))
	b.waitFor("sparse.bin recorded on B", 60*time.Second, func() bool {
		st, ok := b.pathStatus("home:sparse.bin")
		return ok && st.Hash == want && st.State == "real"
	})
	fi, err := os.Stat(filepath.Join(b.arena, "sparse.bin"))
	if err != nil || fi.Size() != far+4 || allocated(fi) > 1<<20 {
		t.Fatalf("sparse.bin on B: %v; size %d (want %d), allocated %d", err, fi.Size(), far+4, allocated(fi))
	}
	a.waitFor("sparse.bin on A", 120*time.Second, func() bool {
		fi, err := os.Stat(filepath.Join(a.arena, "sparse.bin"))
		return err == nil && fi.Size() == far+4
	})
	if got := b3File(t, filepath.Join(a.arena, "sparse.bin")); got != want {
		t.Fatalf("sparse.bin on A: hash %s, want %s", got, want)
	}
	if afi, err := os.Stat(filepath.Join(a.arena, "sparse.bin")); err == nil {
		t.Logf("sparse.bin: %d bytes, %d allocated on B, %d on A", fi.Size(), allocated(fi), allocated(afi))
	}

	// Beyond the limit: FBIG, nothing changed.
	kept := []byte("a real file on B\n")
	nfsWrite(t, tg, "/home/w.txt", kept)
	waitFile(t, b, "w.txt", kept, 10*time.Second)
	waitFile(t, a, "w.txt", kept, 30*time.Second)
	entries := len(b.ownLog())
	fetched := b.cache().Cache.FetchedBytes
	bad := []uint64{nfsMaxFileSize - 2, nfsMaxFileSize, 1 << 63, math.MaxUint64 - 1}
	for _, name := range []string{"w.txt", "unreal.bin"} {
		fh := lookupFH(t, tg, "/home/"+name)
		for _, off := range bad {
			what := fmt.Sprintf("WRITE %s at %d", name, off)
			st, _ := within(t, what, 20*time.Second, func() uint32 { st, _ := rawWrite(t, tg, fh, off, []byte("xyz")); return st })
			if st != nfsc.NFS3ErrFBig {
				t.Errorf("%s: status %d, want NFS3ERR_FBIG", what, st)
			}
		}
		// SETATTR's size beyond the limit too.
		err := tg.Setattr("/home/"+name, nfsc.Sattr3{Size: nfsc.SetSize{SetIt: true, Size: nfsMaxFileSize + 1}})
		if st := nfsStatus(err); st != nfsc.NFS3ErrFBig {
			t.Errorf("truncate %s past the limit: %v", name, err)
		}
	}
	// A change after the refused ones, to know the indexer looked.
	nfsWrite(t, tg, "/home/after.txt", []byte("after\n"))
	waitFile(t, a, "after.txt", []byte("after\n"), 30*time.Second)
	time.Sleep(2 * time.Second) // the idle writer of w.txt is closed after 1 s
	if got, _ := os.ReadFile(filepath.Join(b.arena, "w.txt")); !bytes.Equal(got, kept) {
		t.Errorf("w.txt on B after refused writes: %q", got)
	}
	if st, _ := b.pathStatus("home:unreal.bin"); st.State != "remote" {
		t.Errorf("unreal.bin on B after refused writes: %+v", st)
	}
	if d := b.cache().Cache.FetchedBytes - fetched; d != 0 {
		t.Errorf("refused writes fetched %d bytes", d)
	}
	if other := changedBesides(b.ownLog()[entries:], "after.txt"); other != nil {
		t.Errorf("history after the refused writes: %v; want only after.txt", other)
	}
}

// TestNFSBadNamesRenameSymlink: RENAME and SYMLINK through B's export
// with names holding '/' or NUL, or "." and "..", are refused with
// NFS3ERR_INVAL and change nothing, on B or on A; a symlink target with
// a NUL is refused too.
func TestNFSBadNamesRenameSymlink(t *testing.T) {
	a, b, tg := twoPeersNFS(t, map[string][]byte{"f.txt": []byte("unreal f\n")}, "f.txt")
	nfsWrite(t, tg, "/home/r.txt", []byte("real r\n"))
	waitFile(t, a, "r.txt", []byte("real r\n"), 30*time.Second)
	if _, err := tg.Mkdir("/home/sub", 0o755); err != nil {
		t.Fatal(err)
	}
	a.waitFor("sub on A", 30*time.Second, func() bool {
		fi, err := os.Stat(filepath.Join(a.arena, "sub"))
		return err == nil && fi.IsDir()
	})
	home, sub := lookupFH(t, tg, "/home"), lookupFH(t, tg, "/home/sub")
	entries := len(b.ownLog())
	bad := []string{"a/b", "sub/x", "../escape", "a\x00b", "\x00", ".", ".."}
	for _, from := range []string{"f.txt", "r.txt"} {
		for _, name := range bad {
			if st := rawRename(t, tg, home, from, sub, name); st != nfsc.NFS3ErrInval {
				t.Errorf("RENAME %s to sub/%q: status %d, want NFS3ERR_INVAL", from, name, st)
			}
			if st := rawRename(t, tg, home, name, sub, "ok"); st != nfsc.NFS3ErrInval {
				t.Errorf("RENAME %q to sub/ok: status %d, want NFS3ERR_INVAL", name, st)
			}
		}
	}
	for _, name := range bad {
		if st := rawSymlink(t, tg, home, name, "f.txt"); st != nfsc.NFS3ErrInval {
			t.Errorf("SYMLINK %q: status %d, want NFS3ERR_INVAL", name, st)
		}
	}
	for _, target := range []string{"f\x00.txt", "\x00", ""} {
		if st := rawSymlink(t, tg, home, "l", target); st != nfsc.NFS3ErrInval {
			t.Errorf("SYMLINK l -> %q: status %d, want NFS3ERR_INVAL", target, st)
		}
	}
	// Nothing moved or appeared; the server still works.
	nfsWrite(t, tg, "/home/after.txt", []byte("after\n"))
	waitFile(t, a, "after.txt", []byte("after\n"), 30*time.Second)
	ents, err := tg.ReadDirPlus("/home")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if n := e.Name(); n != "." && n != ".." {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	if got := fmt.Sprint(names); got != "[after.txt f.txt r.txt sub]" {
		t.Errorf("B's export lists %s", got)
	}
	subEnts, err := tg.ReadDirPlus("/home/sub")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range subEnts {
		if n := e.Name(); n != "." && n != ".." {
			t.Errorf("sub holds %q", n)
		}
	}
	for _, p := range []*peer{a, b} {
		for _, name := range []string{"a", "l", "ok", "escape", "sub/ok", "sub/a"} {
			if _, err := os.Lstat(filepath.Join(p.arena, name)); err == nil {
				t.Errorf("%s on %s", name, p.name)
			}
		}
	}
	if other := changedBesides(b.ownLog()[entries:], "after.txt"); other != nil {
		t.Errorf("history after the refused calls: %v; want only after.txt", other)
	}
}
