package nfs

import (
	"math"
	"slices"
	"strings"
	"testing"

	nfsc "github.com/willscott/go-nfs-client/nfs"
	"github.com/willscott/go-nfs-client/nfs/rpc"
	"github.com/willscott/go-nfs-client/nfs/xdr"
)

// Bad input from clients: names that are no names, symlink targets with
// NUL, offsets past any file, sizes past the announced limit.

// rawDirop sends proc with (dir handle, name) and, for CREATE and MKDIR,
// an empty sattr3; it returns the NFS status.
func rawDirop(t *testing.T, tg *nfsc.Target, proc uint32, dir []byte, name string) uint32 {
	t.Helper()
	var call any
	switch proc {
	case nfsc.NFSProc3Create:
		call = &struct {
			rpc.Header
			What nfsc.Diropargs3
			How  uint32
			Attr nfsc.Sattr3
		}{nfsHeader(proc), nfsc.Diropargs3{FH: dir, Filename: name}, 0, nfsc.Sattr3{}}
	case nfsc.NFSProc3Mkdir:
		call = &struct {
			rpc.Header
			What nfsc.Diropargs3
			Attr nfsc.Sattr3
		}{nfsHeader(proc), nfsc.Diropargs3{FH: dir, Filename: name}, nfsc.Sattr3{}}
	default:
		call = &struct {
			rpc.Header
			What nfsc.Diropargs3
		}{nfsHeader(proc), nfsc.Diropargs3{FH: dir, Filename: name}}
	}
	return rawStatus(t, tg, call)
}

func TestBadNames(t *testing.T) {
	tr := sampleTree()
	r := serve(t, tr, openDB(t))
	tg := mustMount(t, r.addr, "/")
	_, dir, err := tg.Lookup("/docs")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a/b", "sub/deep", "a\x00b", "..", ".", "", strings.Repeat("x", 300), "bad\xffutf8"} {
		for _, proc := range []uint32{nfsc.NFSProc3Create, nfsc.NFSProc3Mkdir, nfsc.NFSProc3Remove, nfsc.NFSProc3RmDir} {
			st := rawDirop(t, tg, proc, dir, name)
			if st != nfsc.NFS3ErrInval && st != nfsc.NFS3ErrAcces && st != nfsc.NFS3ErrNameTooLong && st != nfsc.NFS3ErrExist {
				t.Errorf("proc %d name %q: status %d", proc, name, st)
			}
		}
		if name != "." && name != ".." {
			if st := rawDirop(t, tg, nfsc.NFSProc3Lookup, dir, name); st == 0 {
				t.Errorf("lookup %q succeeded", name)
			}
		}
	}
	// RENAME and SYMLINK: a bad name on either side, a bad target
	_, subDir, _ := tg.Lookup("/docs/sub")
	for _, name := range []string{"a/b", "sub/deep", "a\x00b", "\x00", "..", ".", "", strings.Repeat("x", 300)} {
		want := []uint32{nfsc.NFS3ErrInval, nfsc.NFS3ErrNameTooLong}
		for _, st := range []uint32{
			rawRename(t, tg, dir, "readme.txt", subDir, name),
			rawRename(t, tg, dir, name, subDir, "moved"),
			rawSymlink(t, tg, dir, name, "readme.txt"),
		} {
			if !slices.Contains(want, st) {
				t.Errorf("RENAME/SYMLINK with name %q: status %d", name, st)
			}
		}
	}
	for target, want := range map[string]uint32{"a\x00b": nfsc.NFS3ErrInval, "": nfsc.NFS3ErrInval,
		strings.Repeat("x/", 2049): nfsc.NFS3ErrNameTooLong} {
		if st := rawSymlink(t, tg, dir, "l", target); st != want {
			t.Errorf("SYMLINK to %.20q: status %d, want %d", target, st, want)
		}
	}
	// reserved names cannot be made
	if st := rawDirop(t, tg, nfsc.NFSProc3Create, dir, ".realize-tmp-x"); st != nfsc.NFS3ErrAcces {
		t.Errorf("create reserved name: %d", st)
	}
	// ".." at a mount root does not escape
	sub := mustMount(t, r.addr, "/docs/sub")
	_, root, _ := sub.Lookup("/")
	if st := rawDirop(t, sub, nfsc.NFSProc3Lookup, root, ".."); st == 0 {
		t.Errorf("lookup .. at the mount root succeeded")
	}
	// nothing was made, the server lives
	es, err := tg.ReadDirPlus("/docs")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(names(es), ","); got != "bin,empty,link,readme.txt,sub" {
		t.Errorf("docs lists %s", got)
	}
	if n := tr.arena("docs").get("sub/deep"); n == nil {
		t.Error("sub/deep was removed through a name with '/'")
	}
	if n := tr.arena("docs").get("readme.txt"); n == nil {
		t.Error("readme.txt was moved through a bad name")
	}
	if es, _ := tg.ReadDirPlus("/docs/sub"); strings.Join(names(es), ",") != "deep" {
		t.Errorf("docs/sub lists %s", strings.Join(names(es), ","))
	}
}

func rawRename(t *testing.T, tg *nfsc.Target, fromDir []byte, from string, toDir []byte, to string) uint32 {
	t.Helper()
	return rawStatus(t, tg, &struct {
		rpc.Header
		From, To nfsc.Diropargs3
	}{nfsHeader(nfsc.NFSProc3Rename), nfsc.Diropargs3{FH: fromDir, Filename: from}, nfsc.Diropargs3{FH: toDir, Filename: to}})
}

func rawSymlink(t *testing.T, tg *nfsc.Target, dir []byte, name, target string) uint32 {
	t.Helper()
	return rawStatus(t, tg, &struct {
		rpc.Header
		Link   nfsc.Diropargs3
		Attr   nfsc.Sattr3
		Target string
	}{nfsHeader(nfsc.NFSProc3Symlink), nfsc.Diropargs3{FH: dir, Filename: name}, nfsc.Sattr3{}, target})
}

func rawWrite(t *testing.T, tg *nfsc.Target, fh []byte, off uint64, data []byte) uint32 {
	t.Helper()
	return rawStatus(t, tg, &struct {
		rpc.Header
		FH       []byte
		Offset   uint64
		Count    uint32
		How      uint32
		Contents []byte
	}{nfsHeader(nfsc.NFSProc3Write), fh, off, uint32(len(data)), 2, data})
}

// rawRead sends a READ and returns its status, EOF flag and data.
func rawRead(t *testing.T, tg *nfsc.Target, fh []byte, off uint64, count uint32) (uint32, bool, []byte) {
	t.Helper()
	res, err := tg.Call(&struct {
		rpc.Header
		FH     []byte
		Offset uint64
		Count  uint32
	}{nfsHeader(nfsc.NFSProc3Read), fh, off, count})
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Status uint32
		Attr   nfsc.PostOpAttr
		Count  uint32
		EOF    uint32
		Data   []byte
	}
	if r.Status, err = xdr.ReadUint32(res); err != nil || r.Status != 0 {
		return r.Status, false, nil
	}
	if err := xdr.Read(res, &r.Attr); err != nil {
		t.Fatal(err)
	}
	r.Count, _ = xdr.ReadUint32(res)
	r.EOF, _ = xdr.ReadUint32(res)
	if r.Data, err = xdr.ReadOpaque(res); err != nil {
		t.Fatal(err)
	}
	return 0, r.EOF != 0, r.Data
}

func rawStatus(t *testing.T, tg *nfsc.Target, call any) uint32 {
	t.Helper()
	res, err := tg.Call(call)
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	st, err := xdr.ReadUint32(res)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestFarOffsets: READs at and past the end (2^63 and more included,
// which go-nfs would cast to negative) answer EOF with no bytes; WRITEs
// and sizes past the announced maxFileSize are NFS3ERR_FBIG and leave
// the file alone; an unreal file is not realized for them.
func TestFarOffsets(t *testing.T) {
	tg, d := serveUnavailable(t)
	for _, f := range []string{"readme.txt", "unreal.bin"} {
		_, fh, err := tg.Lookup("/docs/" + f)
		if err != nil {
			t.Fatal(err)
		}
		for _, off := range []uint64{4096, 1 << 62, 1 << 63, math.MaxUint64 - 7, math.MaxUint64} {
			for _, count := range []uint32{1, 1 << 20, math.MaxUint32} {
				if st, eof, data := rawRead(t, tg, fh, off, count); st != 0 || !eof || len(data) != 0 {
					t.Errorf("READ %s at %d, %d: status %d, eof %v, %d bytes", f, off, count, st, eof, len(data))
				}
			}
		}
		for _, off := range []uint64{maxFileSize - 2, maxFileSize, 1 << 63, math.MaxUint64 - 1} {
			if st := rawWrite(t, tg, fh, off, []byte("xyz")); st != nfsc.NFS3ErrFBig {
				t.Errorf("WRITE %s at %d: status %d", f, off, st)
			}
		}
		for _, size := range []uint64{maxFileSize + 1, 1 << 63} {
			if _, err := tg.SetAttr(fh, nfsc.Sattr3{Size: nfsc.SetSize{SetIt: true, Size: size}}); errNum(err) != nfsc.NFS3ErrFBig && errNum(err) != nfsc.NFS3ErrInval {
				t.Errorf("SETATTR %s size %d: %v", f, size, err)
			}
		}
	}
	if got := readAll(t, tg, "/docs/readme.txt"); string(got) != "hello" {
		t.Errorf("readme.txt after refused writes: %q", got)
	}
	d.t.mu.Lock()
	unreal := d.unavailable["unreal.bin"]
	d.t.mu.Unlock()
	if !unreal {
		t.Error("unreal.bin was realized for a refused write")
	}
	// At the limit is still possible: a WRITE ending there is not refused
	// by the server (the fake would allocate it: only the boundary's
	// arithmetic is checked).
	if beyondMax(maxFileSize-3, 3) || !beyondMax(maxFileSize-2, 3) || !beyondMax(-1, 0) || beyondMax(0, 0) {
		t.Error("beyondMax misplaces the limit")
	}
}
