package nfs

import (
	"encoding/binary"
	"testing"
	"time"

	nfsc "github.com/willscott/go-nfs-client/nfs"
	"github.com/willscott/go-nfs-client/nfs/rpc"
	"github.com/willscott/go-nfs-client/nfs/xdr"
)

func TestFixReply(t *testing.T) {
	for _, c := range []struct{ in, want uint32 }{{0, 0}, {1, 1}, {2, 3}, {3, 4}, {4, 5}} {
		b := make([]byte, 24)
		for i, v := range []uint32{7, 1, 0, 0, 0, c.in} {
			binary.BigEndian.PutUint32(b[4*i:], v)
		}
		fixReply(b)
		if got := binary.BigEndian.Uint32(b[20:]); got != c.want {
			t.Errorf("accept_stat %d -> %d, want %d", c.in, got, c.want)
		}
	}
}

func TestUnknownProgram(t *testing.T) {
	r := serve(t, sampleTree(), openDB(t))
	tg := mustMount(t, r.addr, "/")
	// NLM is not served: PROG_UNAVAIL, and the connection lives on.
	_, err := tg.Call(&struct{ rpc.Header }{rpc.Header{Rpcvers: 2, Prog: 100021, Vers: 4, Proc: 0, Cred: rpc.AuthNull, Verf: rpc.AuthNull}})
	if err == nil {
		t.Error("call to NLM succeeded")
	}
	_, err = tg.Call(&struct{ rpc.Header }{rpc.Header{Rpcvers: 2, Prog: nfsc.Nfs3Prog, Vers: 4, Proc: 0, Cred: rpc.AuthNull, Verf: rpc.AuthNull}})
	if err == nil {
		t.Error("call to NFSv4 succeeded")
	}
	if _, err := tg.ReadDirPlus("/docs"); err != nil {
		t.Fatal(err)
	}
}

func TestExclusiveCreate(t *testing.T) {
	tr := sampleTree()
	r := serve(t, tr, openDB(t))
	tg := mustMount(t, r.addr, "/")
	_, dir, _ := tg.Lookup("/docs")
	create := func() uint32 {
		res, err := tg.Call(&struct {
			rpc.Header
			What nfsc.Diropargs3
			How  uint32
			Verf [8]byte
		}{nfsHeader(nfsc.NFSProc3Create), nfsc.Diropargs3{FH: dir, Filename: "lock"}, 2, [8]byte{1, 2, 3}})
		if err != nil {
			t.Fatal(err)
		}
		st, _ := xdr.ReadUint32(res)
		return st
	}
	if st := create(); st != 0 {
		t.Fatalf("exclusive create: %d", st)
	}
	if tr.arena("docs").get("lock") == nil {
		t.Fatal("not created")
	}
	if st := create(); st != nfsc.NFS3ErrExist {
		t.Errorf("second exclusive create: %d", st)
	}
}

func TestWriterClosedWhenIdle(t *testing.T) {
	tr := sampleTree()
	docs := tr.arena("docs")
	r := serve(t, tr, openDB(t))
	tg := mustMount(t, r.addr, "/")
	f, err := tg.OpenFile("/docs/readme.txt", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := f.Write([]byte("abc")); err != nil {
			t.Fatal(err)
		}
	}
	closes := func() int {
		docs.t.mu.Lock()
		defer docs.t.mu.Unlock()
		return docs.writeCloses
	}
	if n := closes(); n != 0 {
		t.Errorf("writer closed %d times between writes", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for closes() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("writer not closed when idle (%d)", closes())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := docs.get("readme.txt"); string(n.data) != "abcabcabc" {
		t.Errorf("content %q", n.data)
	}
}
