package nfs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand"
	"net"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/realizefs/realize/internal/store"
	nfsc "github.com/willscott/go-nfs-client/nfs"
	"github.com/willscott/go-nfs-client/nfs/rpc"
	"github.com/willscott/go-nfs-client/nfs/xdr"
)

func openDB(t testing.TB) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

type running struct {
	addr string
	srv  *Server
	stop func()
}

// serve starts a Server for tree on 127.0.0.1:0.
func serve(t testing.TB, tree Tree, db *store.DB) *running {
	t.Helper()
	s, err := New(Options{Tree: tree, DB: db})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return")
		}
	}
	t.Cleanup(stop)
	return &running{addr: l.Addr().String(), srv: s, stop: stop}
}

// mount mounts dirpath with go-nfs-client (MOUNT and NFS on one port).
func mount(t testing.TB, addr, dirpath string) (*nfsc.Target, error) {
	t.Helper()
	// go-nfs-client binds a random local port: retry when it is taken.
	var c *rpc.Client
	var err error
	for i := 0; i < 5; i++ {
		if c, err = rpc.DialTCP("tcp", addr, false); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	m := nfsc.Mount{Client: c}
	return m.Mount(dirpath, rpc.AuthNull)
}

func mustMount(t *testing.T, addr, dirpath string) *nfsc.Target {
	t.Helper()
	tg, err := mount(t, addr, dirpath)
	if err != nil {
		t.Fatalf("mount %s: %v", dirpath, err)
	}
	return tg
}

func errNum(err error) uint32 {
	var e *nfsc.Error
	if errors.As(err, &e) {
		return e.ErrorNum
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, os.ErrNotExist):
		return nfsc.NFS3ErrNoEnt
	case errors.Is(err, os.ErrExist):
		return nfsc.NFS3ErrExist
	case errors.Is(err, os.ErrPermission):
		return nfsc.NFS3ErrPerm
	}
	return 1 << 31
}

func wantErr(t *testing.T, what string, err error, num uint32) {
	t.Helper()
	if got := errNum(err); got != num {
		t.Errorf("%s: got error %v (%d), want %d", what, err, got, num)
	}
}

func names(es []*nfsc.EntryPlus) []string {
	var out []string
	for _, e := range es {
		if e.Name() != "." && e.Name() != ".." {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

func entry(es []*nfsc.EntryPlus, name string) *nfsc.EntryPlus {
	for _, e := range es {
		if e.Name() == name {
			return e
		}
	}
	return nil
}

func readAll(t *testing.T, tg *nfsc.Target, p string) []byte {
	t.Helper()
	f, err := tg.Open(p)
	if err != nil {
		t.Fatalf("open %s: %v", p, err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return b
}

func sampleTree() *fakeTree {
	tr := newFakeTree("docs", "photos")
	d := tr.arena("docs")
	d.putFile("readme.txt", []byte("hello"), false)
	d.putFile("bin/run.sh", []byte("#!/bin/sh\n"), true)
	d.putFile("sub/deep/file.txt", []byte("deep"), false)
	d.putDir("empty")
	d.t.mu.Lock()
	d.nodes["link"] = &fakeNode{meta: metaSymlink("readme.txt")}
	d.t.mu.Unlock()
	tr.arena("photos").putFile("2024/a.jpg", bytes.Repeat([]byte{1}, 1000), false)
	return tr
}

func TestListing(t *testing.T) {
	r := serve(t, sampleTree(), openDB(t))
	tg := mustMount(t, r.addr, "/")
	es, err := tg.ReadDirPlus("/")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(names(es), ","); got != "conflicts,docs,photos" {
		t.Fatalf("root lists %s", got)
	}
	es, err = tg.ReadDirPlus("/docs")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(names(es), ","); got != "bin,empty,link,readme.txt,sub" {
		t.Fatalf("docs lists %s", got)
	}
	rd := entry(es, "readme.txt")
	if rd.Size() != 5 || rd.Mode().Perm() != 0o644 || !rd.ModTime().Equal(time.Unix(0, fakeTime)) {
		t.Errorf("readme.txt: size %d mode %v mtime %v", rd.Size(), rd.Mode(), rd.ModTime())
	}
	if e := entry(es, "bin"); !e.IsDir() || e.Mode().Perm() != 0o755 {
		t.Errorf("bin: %v", e.Mode())
	}
	if e := entry(es, "link"); e.Attr.Attr.Type != nfsc.NF3Lnk {
		t.Errorf("link type %d", e.Attr.Attr.Type)
	}
	es2, _ := tg.ReadDirPlus("/docs/bin")
	if e := entry(es2, "run.sh"); e == nil || e.Mode().Perm() != 0o755 || e.Size() != 10 {
		t.Errorf("run.sh: %+v", e)
	}
	// fileids are the handle ids: distinct and stable
	ids := map[uint64]string{}
	for _, e := range es {
		if e.Name() == "." || e.Name() == ".." {
			continue
		}
		if o, dup := ids[e.FileId]; dup {
			t.Errorf("fileid %d of %s and %s", e.FileId, o, e.Name())
		}
		ids[e.FileId] = e.Name()
	}
	again, _ := tg.ReadDirPlus("/docs")
	for _, e := range again {
		if e.Name() != "." && e.Name() != ".." && ids[e.FileId] != e.Name() {
			t.Errorf("fileid of %s changed", e.Name())
		}
	}
	// readlink
	f, err := tg.Open("/docs/link")
	if err != nil {
		t.Fatal(err)
	}
	if tgt, err := f.Readlink(); err != nil || tgt != "readme.txt" {
		t.Errorf("readlink: %q %v", tgt, err)
	}
	if got := readAll(t, tg, "/docs/sub/deep/file.txt"); string(got) != "deep" {
		t.Errorf("read %q", got)
	}
	// statfs: the Tree's numbers
	st, err := fsstat(tg)
	if err != nil {
		t.Fatal(err)
	}
	if st.Tbytes != 100<<30 || st.Fbytes != 40<<30 || st.Abytes != 30<<30 {
		t.Errorf("fsstat %+v", st)
	}
}

type fsstatRes struct {
	Attr                                   nfsc.PostOpAttr
	Tbytes, Fbytes, Abytes, Tfiles, Ffiles uint64
	Afiles                                 uint64
	Invarsec                               uint32
}

func fsstat(tg *nfsc.Target) (*fsstatRes, error) {
	_, fh, err := tg.Lookup("/")
	if err != nil {
		return nil, err
	}
	res, err := tg.Call(&struct {
		rpc.Header
		FH []byte
	}{Header: nfsHeader(18), FH: fh})
	if err != nil {
		return nil, err
	}
	if st, _ := xdr.ReadUint32(res); st != 0 {
		return nil, nfsc.NFS3Error(st)
	}
	out := &fsstatRes{}
	return out, xdr.Read(res, out)
}

func nfsHeader(proc uint32) rpc.Header {
	return rpc.Header{Rpcvers: 2, Prog: nfsc.Nfs3Prog, Vers: nfsc.Nfs3Vers, Proc: proc, Cred: rpc.AuthNull, Verf: rpc.AuthNull}
}

func TestReadLarge(t *testing.T) {
	tr := newFakeTree("big")
	data := make([]byte, 40<<20+12345)
	rand.New(rand.NewSource(1)).Read(data)
	tr.arena("big").putFile("f.bin", data, false)
	r := serve(t, tr, openDB(t))
	tg := mustMount(t, r.addr, "/big")
	f, err := tg.Open("/f.bin")
	if err != nil {
		t.Fatal(err)
	}
	// Big buffers: each READ asks more than 16 MiB; the server caps it and
	// must not flag EOF before the end.
	buf := make([]byte, 64<<20)
	var got []byte
	off := int64(0)
	for i := 0; i < 10; i++ {
		n, err := f.ReadAt(buf, off)
		got = append(got, buf[:n]...)
		off += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes of %d (or different)", len(got), len(data))
	}
	// small reads, and past EOF
	small := make([]byte, 100)
	if n, err := f.ReadAt(small, 5); n != 100 || !bytes.Equal(small, data[5:105]) || err != nil {
		t.Errorf("small read: %d %v", n, err)
	}
	if n, err := f.ReadAt(small, int64(len(data))+10); n != 0 || err != io.EOF {
		t.Errorf("read past EOF: %d %v", n, err)
	}
	if n, err := f.ReadAt(small, int64(len(data))-10); n != 10 || err != io.EOF {
		t.Errorf("read across EOF: %d %v", n, err)
	}
}

func TestWriteRenameTruncate(t *testing.T) {
	tr := sampleTree()
	docs := tr.arena("docs")
	r := serve(t, tr, openDB(t))
	tg := mustMount(t, r.addr, "/")

	if _, err := tg.Create("/docs/new.txt", 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := tg.OpenFile("/docs/new.txt", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("hello world")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(20, io.SeekStart); err != nil { // past EOF: a hole
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("end")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(6, io.SeekStart); err != nil { // overwrite in the middle
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("WORLD")); err != nil {
		t.Fatal(err)
	}
	f.Close()
	want := []byte("hello WORLD\x00\x00\x00\x00\x00\x00\x00\x00\x00end")
	if got := readAll(t, tg, "/docs/new.txt"); !bytes.Equal(got, want) {
		t.Errorf("read back %q", got)
	}
	fi, _, err := tg.Lookup("/docs/new.txt")
	if err != nil || fi.Size() != int64(len(want)) {
		t.Errorf("size after writes: %v %v", fi, err)
	}
	if n := docs.get("new.txt"); n == nil || !bytes.Equal(n.data, want) {
		t.Errorf("tree has %+v", n)
	}
	// an UNCHECKED create of an existing file keeps its bytes
	if _, err := tg.Create("/docs/new.txt", 0o644); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, tg, "/docs/new.txt"); !bytes.Equal(got, want) {
		t.Errorf("after re-create: %q", got)
	}

	// truncate (shrink, grow) and chmod +x through SETATTR
	if err := tg.Setattr("/docs/new.txt", nfsc.Sattr3{Size: nfsc.SetSize{SetIt: true, Size: 5}}); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, tg, "/docs/new.txt"); string(got) != "hello" {
		t.Errorf("after truncate: %q", got)
	}
	if err := tg.Setattr("/docs/readme.txt", nfsc.Sattr3{Size: nfsc.SetSize{SetIt: true, Size: 8}, Mode: nfsc.SetMode{SetIt: true, Mode: 0o755}}); err != nil {
		t.Fatal(err)
	}
	if n := docs.get("readme.txt"); string(n.data) != "hello\x00\x00\x00" || !n.meta.Exec {
		t.Errorf("readme after setattr: %q exec=%v", n.data, n.meta.Exec)
	}
	mt := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := tg.Setattr("/docs/readme.txt", nfsc.Sattr3{Mtime: nfsc.SetTime{SetIt: nfsc.SetToClientTime, Time: nfsc.NFS3Time{Seconds: uint32(mt.Unix())}}}); err != nil {
		t.Fatal(err)
	}
	if n := docs.get("readme.txt"); n.meta.MTime != mt.UnixNano() {
		t.Errorf("mtime %v", time.Unix(0, n.meta.MTime))
	}

	// rename a file: its handle follows it
	_, fh, err := tg.Lookup("/docs/new.txt")
	if err != nil {
		t.Fatal(err)
	}
	if err := tg.Rename("/docs/new.txt", "/docs/renamed.txt"); err != nil {
		t.Fatal(err)
	}
	if a, err := tg.GetAttr(fh); err != nil || a.Size() != 5 {
		t.Errorf("handle after rename: %v %v", a, err)
	}
	if docs.get("new.txt") != nil || docs.get("renamed.txt") == nil {
		t.Error("rename not in the tree")
	}
	// rename a directory: handles of its children follow
	_, childFH, err := tg.Lookup("/docs/sub/deep/file.txt")
	if err != nil {
		t.Fatal(err)
	}
	if err := tg.Rename("/docs/sub", "/docs/moved"); err != nil {
		t.Fatal(err)
	}
	if a, err := tg.GetAttr(childFH); err != nil || a.Size() != 4 {
		t.Errorf("child handle after dir rename: %v %v", a, err)
	}
	if got := readAll(t, tg, "/docs/moved/deep/file.txt"); string(got) != "deep" {
		t.Errorf("moved file: %q", got)
	}
	// across arenas: EXDEV
	wantErr(t, "rename across arenas", tg.Rename("/docs/renamed.txt", "/photos/x.txt"), nfsc.NFS3ErrXDev)

	// mkdir, rmdir (non-empty: NOTEMPTY), remove
	if _, err := tg.Mkdir("/docs/d", 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := tg.Mkdir("/docs/d", 0o755); errNum(err) != nfsc.NFS3ErrExist {
		t.Errorf("mkdir existing: %v", err)
	}
	if _, err := tg.Create("/docs/d/x", 0o644); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "rmdir non-empty", tg.RmDir("/docs/d"), nfsc.NFS3ErrNotEmpty)
	wantErr(t, "rmdir non-empty (remove)", tg.Remove("/docs/moved"), nfsc.NFS3ErrNotEmpty)
	_, xfh, _ := tg.Lookup("/docs/d/x")
	if err := tg.Remove("/docs/d/x"); err != nil {
		t.Fatal(err)
	}
	_, err = tg.GetAttr(xfh)
	wantErr(t, "handle of removed file", err, nfsc.NFS3ErrStale)
	if err := tg.RmDir("/docs/d"); err != nil {
		t.Fatal(err)
	}
	if docs.get("d") != nil {
		t.Error("d still there")
	}

	// symlink
	if err := tg.Symlink("../readme.txt", "/docs/moved/ln"); err != nil {
		t.Fatal(err)
	}
	if n := docs.get("moved/ln"); n == nil || n.meta.Target != "../readme.txt" {
		t.Errorf("symlink in tree: %+v", n)
	}
	lf, err := tg.Open("/docs/moved/ln")
	if err != nil {
		t.Fatal(err)
	}
	if tgt, err := lf.Readlink(); tgt != "../readme.txt" || err != nil {
		t.Errorf("readlink %q %v", tgt, err)
	}
	// nothing can be created at the export root or in conflicts/
	if _, err := tg.Mkdir("/newarena", 0o755); err == nil {
		t.Error("mkdir at the export root succeeded")
	}
	if _, err := tg.Create("/conflicts/docs/x", 0o644); err == nil {
		t.Error("create in conflicts/ succeeded")
	}
}

func TestConflicts(t *testing.T) {
	tr := sampleTree()
	docs := tr.arena("docs")
	docs.addConflict("notes/a.txt", "bob-1a2b3c4d.txt", []byte("bob's"))
	docs.addConflict("notes/a.txt", "carol-5e6f7a8b.txt", []byte("carol's"))
	r := serve(t, tr, openDB(t))
	tg := mustMount(t, r.addr, "/")
	es, err := tg.ReadDirPlus("/conflicts")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(names(es), ","); got != "docs,photos" {
		t.Errorf("conflicts/ lists %s", got)
	}
	es, err = tg.ReadDirPlus("/conflicts/docs/notes/a.txt")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(names(es), ","); got != "bob-1a2b3c4d.txt,carol-5e6f7a8b.txt" {
		t.Errorf("versions: %s", got)
	}
	if e := entry(es, "bob-1a2b3c4d.txt"); e.Size() != 5 || e.Mode().Perm() != 0o444 {
		t.Errorf("version attrs: %d %v", e.Size(), e.Mode())
	}
	if got := readAll(t, tg, "/conflicts/docs/notes/a.txt/carol-5e6f7a8b.txt"); string(got) != "carol's" {
		t.Errorf("version bytes %q", got)
	}
	if f, err := tg.OpenFile("/conflicts/docs/notes/a.txt/carol-5e6f7a8b.txt", 0o644); err == nil {
		if _, err := f.Write([]byte("x")); err == nil {
			t.Error("write to a conflict version succeeded")
		}
	}
	if err := tg.Remove("/conflicts/docs/notes/a.txt/bob-1a2b3c4d.txt"); err != nil {
		t.Fatal(err)
	}
	vs, _ := docs.Conflicts(context.Background())
	if len(vs) != 1 || vs[0].Name != "carol-5e6f7a8b.txt" {
		t.Errorf("conflicts after removal: %+v", vs)
	}
	if err := tg.Remove("/conflicts/docs/notes/a.txt/carol-5e6f7a8b.txt"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tg.Lookup("/conflicts/docs/notes"); errNum(err) != nfsc.NFS3ErrNoEnt {
		t.Errorf("resolved conflict dir still there: %v", err)
	}
}

func TestReadOnlyView(t *testing.T) {
	tr := sampleTree()
	r := serve(t, tr, openDB(t))
	tg := mustMount(t, r.addr, "/.all")
	es, err := tg.ReadDirPlus("/docs")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(names(es), ","); got != "bin,empty,link,readme.txt,sub" {
		t.Fatalf("docs lists %s", got)
	}
	if got := readAll(t, tg, "/docs/readme.txt"); string(got) != "hello" {
		t.Errorf("read %q", got)
	}
	_, err = tg.Create("/docs/x", 0o644)
	wantErr(t, "create", err, nfsc.NFS3ErrROFS)
	_, err = tg.Mkdir("/docs/x", 0o755)
	wantErr(t, "mkdir", err, nfsc.NFS3ErrROFS)
	wantErr(t, "remove", tg.Remove("/docs/readme.txt"), nfsc.NFS3ErrROFS)
	wantErr(t, "rename", tg.Rename("/docs/readme.txt", "/docs/r2"), nfsc.NFS3ErrROFS)
	wantErr(t, "symlink", tg.Symlink("a", "/docs/l2"), nfsc.NFS3ErrROFS)
	wantErr(t, "setattr", tg.Setattr("/docs/readme.txt", nfsc.Sattr3{Size: nfsc.SetSize{SetIt: true, Size: 1}}), nfsc.NFS3ErrROFS)
	f, err := tg.OpenFile("/docs/readme.txt", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Write([]byte("x"))
	wantErr(t, "write", err, nfsc.NFS3ErrROFS)
	if n := tr.arena("docs").get("readme.txt"); string(n.data) != "hello" {
		t.Errorf("read-only view changed the file: %q", n.data)
	}
	// same file, both views: distinct handles (view byte), same fileid
	_, fhAll, _ := tg.Lookup("/docs/readme.txt")
	rw := mustMount(t, r.addr, "/")
	_, fhRW, _ := rw.Lookup("/docs/readme.txt")
	if bytes.Equal(fhAll, fhRW) {
		t.Error("same handle in both views")
	}
	if len(fhAll) > 64 {
		t.Errorf("handle of %d bytes", len(fhAll))
	}
}

func TestSubdirMounts(t *testing.T) {
	r := serve(t, sampleTree(), openDB(t))
	for dir, want := range map[string]string{
		"/":                "conflicts,docs,photos",
		"/docs":            "bin,empty,link,readme.txt,sub",
		"/docs/sub":        "deep",
		"/docs/sub/deep/":  "file.txt",
		"/.all/photos":     "2024",
		"/.all":            "conflicts,docs,photos",
		"/share":           "conflicts,docs,photos",
		"/share/docs":      "bin,empty,link,readme.txt,sub",
		"/share/.all/docs": "bin,empty,link,readme.txt,sub",
		"/conflicts":       "docs,photos",
	} {
		tg, err := mount(t, r.addr, dir)
		if err != nil {
			t.Errorf("mount %s: %v", dir, err)
			continue
		}
		es, err := tg.ReadDirPlus("/")
		if err != nil {
			t.Errorf("list %s: %v", dir, err)
			continue
		}
		if got := strings.Join(names(es), ","); got != want {
			t.Errorf("mount %s lists %s, want %s", dir, got, want)
		}
	}
	tg := mustMount(t, r.addr, "/docs/sub")
	if got := readAll(t, tg, "/deep/file.txt"); string(got) != "deep" {
		t.Errorf("read in subdir mount: %q", got)
	}
	if _, err := tg.Create("/deep/new", 0o644); err != nil {
		t.Errorf("create in subdir mount: %v", err)
	}
	// failures are refusals, not a crashed server
	for _, dir := range []string{"/nope", "/docs/readme.txt", "/docs/../..", "/.all/nope", "/docs/\x00"} {
		if _, err := mount(t, r.addr, dir); err == nil {
			t.Errorf("mount %q succeeded", dir)
		}
	}
	mustMount(t, r.addr, "/")
}

func TestStaleHandles(t *testing.T) {
	r := serve(t, sampleTree(), openDB(t))
	tg := mustMount(t, r.addr, "/")
	for _, fh := range [][]byte{
		{1, 2, 3},
		bytes.Repeat([]byte{0xff}, 28),
		r.srv.handles.encode(viewMerged, 1, 999999),
		r.srv.handles.encode(7, 1, 1),
	} {
		_, err := tg.GetAttr(fh)
		wantErr(t, "getattr of unknown handle", err, nfsc.NFS3ErrStale)
	}
	// a handle from another database is stale too
	other, err := New(Options{Tree: sampleTree(), DB: openDB(t)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = tg.GetAttr(other.handles.encode(viewMerged, 1, 1))
	wantErr(t, "handle of another database", err, nfsc.NFS3ErrStale)
}

func TestHandlesSurviveRestart(t *testing.T) {
	tr := sampleTree()
	db := openDB(t)
	r := serve(t, tr, db)
	tg := mustMount(t, r.addr, "/docs")
	_, fileFH, err := tg.Lookup("/sub/deep/file.txt")
	if err != nil {
		t.Fatal(err)
	}
	_, dirFH, err := tg.Lookup("/sub")
	if err != nil {
		t.Fatal(err)
	}
	fa, _ := tg.GetAttr(fileFH)
	r.stop()

	r2 := serve(t, tr, db)
	tg2 := mustMount(t, r2.addr, "/docs")
	a, err := tg2.GetAttr(fileFH)
	if err != nil || a.Size() != 4 || a.Fileid != fa.Fileid {
		t.Fatalf("old file handle after restart: %+v %v", a, err)
	}
	if a, err := tg2.GetAttr(dirFH); err != nil || !a.IsDir() {
		t.Fatalf("old dir handle after restart: %v", err)
	}
	// the old handles work for lookups and reads too
	fh := lookupIn(t, tg2, dirFH, "deep")
	fh = lookupIn(t, tg2, fh, "file.txt")
	if !bytes.Equal(fh, fileFH) {
		t.Errorf("lookup gives a new handle after restart")
	}
}

// lookupIn does a raw LOOKUP of name in directory handle dir.
func lookupIn(t *testing.T, tg *nfsc.Target, dir []byte, name string) []byte {
	t.Helper()
	res, err := tg.Call(&struct {
		rpc.Header
		What nfsc.Diropargs3
	}{nfsHeader(nfsc.NFSProc3Lookup), nfsc.Diropargs3{FH: dir, Filename: name}})
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := xdr.ReadUint32(res); st != 0 {
		t.Fatalf("lookup %q: %v", name, nfsc.NFS3Error(st))
	}
	fh, err := xdr.ReadOpaque(res)
	if err != nil {
		t.Fatal(err)
	}
	return fh
}

// serveUnavailable serves the sample tree with docs/unreal.bin (4 KiB),
// whose bytes no peer can serve, and mounts its root; it returns the
// mount and the docs arena.
func serveUnavailable(t *testing.T) (*nfsc.Target, *fakeArena) {
	t.Helper()
	tr := sampleTree()
	d := tr.arena("docs")
	d.putFile("unreal.bin", bytes.Repeat([]byte{9}, 4096), false)
	d.t.mu.Lock()
	d.unavailable["unreal.bin"] = true
	d.t.mu.Unlock()
	r := serve(t, tr, openDB(t))
	return mustMount(t, r.addr, "/"), d
}

func TestUnavailableReadIsEIO(t *testing.T) {
	tg, d := serveUnavailable(t)
	f, err := tg.Open("/docs/unreal.bin")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = f.ReadAt(make([]byte, 100), 0)
	wantErr(t, "read of unavailable bytes", err, nfsc.NFS3ErrIO)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %v", took)
	}
	// listing and attributes still work
	if fi, _, err := tg.Lookup("/docs/unreal.bin"); err != nil || fi.Size() != 4096 {
		t.Errorf("lookup: %v %v", fi, err)
	}
	// once available, it reads
	d.t.mu.Lock()
	delete(d.unavailable, "unreal.bin")
	d.t.mu.Unlock()
	if got := readAll(t, tg, "/docs/unreal.bin"); len(got) != 4096 {
		t.Errorf("read %d bytes", len(got))
	}
}

func TestLinkAndMknodNotSupported(t *testing.T) {
	r := serve(t, sampleTree(), openDB(t))
	tg := mustMount(t, r.addr, "/")
	_, dir, _ := tg.Lookup("/docs")
	_, file, _ := tg.Lookup("/docs/readme.txt")
	res, err := tg.Call(&struct {
		rpc.Header
		File []byte
		Link nfsc.Diropargs3
	}{nfsHeader(15), file, nfsc.Diropargs3{FH: dir, Filename: "hard"}})
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := xdr.ReadUint32(res); st != 10004 {
		t.Errorf("LINK: status %d", st)
	}
}
