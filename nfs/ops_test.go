package nfs

import (
	"bytes"
	"testing"
)

func TestOpsCountedByProcedure(t *testing.T) {
	r := serve(t, sampleTree(), openDB(t))
	if got := r.srv.Ops(); len(got) != 0 {
		t.Fatalf("ops before any call: %v", got)
	}
	tg := mustMount(t, r.addr, "/")
	if got := readAll(t, tg, "/docs/readme.txt"); string(got) != "hello" {
		t.Fatalf("read %q", got)
	}
	f, err := tg.OpenFile("/docs/big.bin", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	// Big enough that some WRITE calls pass the wire filter uninspected.
	if _, err := f.Write(bytes.Repeat([]byte{7}, 300<<10)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	ops := r.srv.Ops()
	for _, p := range []string{"MOUNT", "LOOKUP", "READ", "WRITE"} {
		if ops[p] == 0 {
			t.Errorf("no %s counted: %v", p, ops)
		}
	}
	if ops["OTHER"] != 0 {
		t.Errorf("calls counted as OTHER: %v", ops)
	}
	before := ops["READ"]
	readAll(t, tg, "/docs/readme.txt")
	if after := r.srv.Ops()["READ"]; after <= before {
		t.Errorf("READ count did not move: %d then %d", before, after)
	}
}

func TestCountHeader(t *testing.T) {
	var o opCounts
	call := func(mtype, prog, vers, proc uint32) []byte {
		var b []byte
		for _, w := range []uint32{1, mtype, 2, prog, vers, proc} {
			b = append(b, byte(w>>24), byte(w>>16), byte(w>>8), byte(w))
		}
		return b
	}
	o.countHeader(call(0, progNFS, 3, 7))   // WRITE
	o.countHeader(call(1, progNFS, 3, 7))   // a reply: not counted
	o.countHeader(call(0, progMount, 3, 1)) // MNT
	o.countHeader(call(0, progNFS, 4, 7))   // another version
	o.countHeader([]byte{1, 2, 3})          // too short
	if o.nfs[7].Load() != 1 || o.mount.Load() != 1 || o.other.Load() != 1 {
		t.Errorf("write %d mount %d other %d", o.nfs[7].Load(), o.mount.Load(), o.other.Load())
	}
}
