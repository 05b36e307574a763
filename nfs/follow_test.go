package nfs

import (
	"bytes"
	"context"
	"testing"

	"github.com/realizefs/realize"
	nfsc "github.com/willscott/go-nfs-client/nfs"
	bolt "go.etcd.io/bbolt"
)

// A move made elsewhere (the indexer, a peer) and reported through
// MoveHandles keeps the handles of the moved directory and of what is
// below it working at the new place; the NFS rename that follows (when
// the move was made through NFS) finds nothing left to move and keeps them.
func TestMoveHandlesFollowsAMove(t *testing.T) {
	tr := sampleTree()
	db := openDB(t)
	r := serve(t, tr, db)
	tg := mustMount(t, r.addr, "/.all/docs")
	_, dirFH, err := tg.Lookup("/sub")
	if err != nil {
		t.Fatal(err)
	}
	_, fileFH, err := tg.Lookup("/sub/deep/file.txt")
	if err != nil {
		t.Fatal(err)
	}
	d := tr.arena("docs")
	if err := d.Rename(context.Background(), "sub", "moved"); err != nil {
		t.Fatal(err)
	}
	if _, err := tg.GetAttr(fileFH); errNum(err) != nfsc.NFS3ErrNoEnt {
		t.Fatalf("before the move is reported, the old path is gone: want NOENT, got %v", err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return MoveHandles(tx, "docs", "sub", "moved") }); err != nil {
		t.Fatal(err)
	}
	if a, err := tg.GetAttr(fileFH); err != nil || a.Size() != 4 {
		t.Fatalf("file handle after the move: %+v %v", a, err)
	}
	if got := lookupIn(t, tg, dirFH, "deep"); got == nil {
		t.Fatal("lookup below the moved directory's old handle")
	}
	_, now, err := tg.Lookup("/moved/deep/file.txt")
	if err != nil || !bytes.Equal(now, fileFH) {
		t.Fatalf("the file at its new path has another handle (%v)", err)
	}
	// Reported twice (the NFS rename after the indexer's): no change.
	if err := r.srv.handles.rename("docs/sub", "docs/moved"); err != nil {
		t.Fatal(err)
	}
	if a, err := tg.GetAttr(fileFH); err != nil || a.Size() != 4 {
		t.Fatalf("file handle after the move was reported again: %+v %v", a, err)
	}
	// A database without NFS handles has nothing to move.
	if err := openDB(t).Update(func(tx *bolt.Tx) error { return MoveHandles(tx, "docs", "a", "b") }); err != nil {
		t.Fatal(err)
	}
}

// A directory whose names changed elsewhere shows a new mtime (and so a
// new ctime) in both views, every time, so that a kernel checks its cached
// listing and lookups again.
func TestListedChangesDirectoryTimes(t *testing.T) {
	tr := sampleTree()
	r := serve(t, tr, openDB(t))
	for _, view := range []string{"/docs", "/.all/docs"} {
		tg := mustMount(t, r.addr, view)
		_, fh, err := tg.Lookup("/sub")
		if err != nil {
			t.Fatal(err)
		}
		before, err := tg.GetAttr(fh)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[nfsc.NFS3Time]bool{before.Mtime: true}
		for range 3 {
			r.srv.Listed("docs", []realize.Path{"sub"})
			a, err := tg.GetAttr(fh)
			if err != nil {
				t.Fatal(err)
			}
			if seen[a.Mtime] || a.Ctime != a.Mtime {
				t.Fatalf("%s: mtime %v ctime %v after a change of names (seen before: %v)", view, a.Mtime, a.Ctime, seen)
			}
			seen[a.Mtime] = true
		}
		// The listing of the parent shows the same time as GETATTR.
		es, err := tg.ReadDirPlus("/")
		if err != nil {
			t.Fatal(err)
		}
		a, _ := tg.GetAttr(fh)
		if e := entry(es, "sub"); e == nil || e.Attr.Attr.Mtime != a.Mtime {
			t.Fatalf("%s: READDIRPLUS shows another mtime for sub than GETATTR", view)
		}
	}
}
