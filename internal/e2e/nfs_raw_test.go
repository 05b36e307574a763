package e2e

import (
	"errors"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/zeebo/blake3"

	nfsc "github.com/willscott/go-nfs-client/nfs"
	"github.com/willscott/go-nfs-client/nfs/rpc"
	"github.com/willscott/go-nfs-client/nfs/xdr"
)

// Raw NFSv3 calls, for what go-nfs-client's helpers cannot send: offsets
// of 2^63 and beyond, names with '/' or NUL (its helpers split paths).

func nfsHdr(proc uint32) rpc.Header {
	return rpc.Header{Rpcvers: 2, Prog: nfsc.Nfs3Prog, Vers: nfsc.Nfs3Vers, Proc: proc, Cred: rpc.AuthNull, Verf: rpc.AuthNull}
}

// callStatus sends call and returns the reply, positioned after the NFS
// status, and the status.
func callStatus(t *testing.T, tg *nfsc.Target, call any) (io.ReadSeeker, uint32) {
	t.Helper()
	res, err := tg.Call(call)
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	st, err := xdr.ReadUint32(res)
	if err != nil {
		t.Fatalf("reply status: %v", err)
	}
	return res, st
}

type readReply struct {
	status uint32
	eof    bool
	data   []byte
}

// rawRead sends one READ of count bytes at off.
func rawRead(t *testing.T, tg *nfsc.Target, fh []byte, off uint64, count uint32) readReply {
	t.Helper()
	res, st := callStatus(t, tg, &struct {
		rpc.Header
		FH     []byte
		Offset uint64
		Count  uint32
	}{nfsHdr(nfsc.NFSProc3Read), fh, off, count})
	if st != nfsc.NFS3Ok {
		return readReply{status: st}
	}
	var body struct {
		Attr  nfsc.PostOpAttr
		Count uint32
		EOF   uint32
	}
	if err := xdr.Read(res, &body); err != nil {
		t.Fatalf("READ reply: %v", err)
	}
	data, err := xdr.ReadOpaque(res)
	if err != nil {
		t.Fatalf("READ data: %v", err)
	}
	if uint32(len(data)) != body.Count {
		t.Fatalf("READ reply: count %d, %d bytes", body.Count, len(data))
	}
	return readReply{eof: body.EOF != 0, data: data}
}

// rawWrite sends one FILE_SYNC WRITE of data at off and returns the
// status and the count the server says it wrote.
func rawWrite(t *testing.T, tg *nfsc.Target, fh []byte, off uint64, data []byte) (uint32, uint32) {
	t.Helper()
	res, st := callStatus(t, tg, &struct {
		rpc.Header
		FH       []byte
		Offset   uint64
		Count    uint32
		How      uint32
		Contents []byte
	}{nfsHdr(nfsc.NFSProc3Write), fh, off, uint32(len(data)), 2, data})
	if st != nfsc.NFS3Ok {
		return st, 0
	}
	var body struct {
		Wcc   nfsc.WccData
		Count uint32
	}
	if err := xdr.Read(res, &body); err != nil {
		t.Fatalf("WRITE reply: %v", err)
	}
	return st, body.Count
}

func rawRename(t *testing.T, tg *nfsc.Target, fromDir []byte, from string, toDir []byte, to string) uint32 {
	t.Helper()
	_, st := callStatus(t, tg, &struct {
		rpc.Header
		From nfsc.Diropargs3
		To   nfsc.Diropargs3
	}{nfsHdr(nfsc.NFSProc3Rename), nfsc.Diropargs3{FH: fromDir, Filename: from}, nfsc.Diropargs3{FH: toDir, Filename: to}})
	return st
}

func rawSymlink(t *testing.T, tg *nfsc.Target, dir []byte, name, target string) uint32 {
	t.Helper()
	_, st := callStatus(t, tg, &struct {
		rpc.Header
		Link   nfsc.Diropargs3
		Attr   nfsc.Sattr3
		Target string
	}{nfsHdr(nfsc.NFSProc3Symlink), nfsc.Diropargs3{FH: dir, Filename: name}, nfsc.Sattr3{}, target})
	return st
}

// nfsStatus is the NFS status of an error from go-nfs-client (0 for nil).
func nfsStatus(err error) uint32 {
	var e *nfsc.Error
	switch {
	case err == nil:
		return nfsc.NFS3Ok
	case errors.As(err, &e):
		return e.ErrorNum
	}
	return 1 << 31
}

// within runs f and fails the test if it takes longer than limit (a
// hang must not stall the suite; the client is closed at cleanup, which
// ends the call).
func within[T any](t *testing.T, what string, limit time.Duration, f func() T) (T, time.Duration) {
	t.Helper()
	start := time.Now()
	done := make(chan T, 1)
	go func() { done <- f() }()
	select {
	case v := <-done:
		return v, time.Since(start)
	case <-time.After(limit):
		t.Fatalf("%s: no answer within %v", what, limit)
	}
	var zero T
	return zero, 0
}

// b3File is the BLAKE3-256 of a file's bytes, in lowercase hex.
func b3File(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := blake3.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}
