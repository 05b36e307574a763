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
	if err := db.Update(func(tx *bolt.Tx) error { return MoveHandles(tx, "docs", "sub", "moved", false) }); err != nil {
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
	if err := openDB(t).Update(func(tx *bolt.Tx) error { return MoveHandles(tx, "docs", "a", "b", false) }); err != nil {
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

// After a directory moved through an overlay mount (oldName), the
// all-files view answers a LOOKUP of the old name with the moved
// directory's handle while the real directory hides the old name — the
// kernel revalidates the lower dentry it keeps under that name — and only
// then: not in listings, not in the merged view, not once the old name is
// no longer hidden.
func TestOldNameAnswersWhileHidden(t *testing.T) {
	tr := sampleTree()
	db := openDB(t)
	r := serve(t, tr, db)
	all := mustMount(t, r.addr, "/.all/docs")
	_, subFH, err := all.Lookup("/sub")
	if err != nil {
		t.Fatal(err)
	}
	_, root, err := all.Lookup("/")
	if err != nil {
		t.Fatal(err)
	}
	d := tr.arena("docs")
	if err := d.Rename(context.Background(), "sub", "moved"); err != nil {
		t.Fatal(err)
	}
	d.hide("sub", true)
	if err := db.Update(func(tx *bolt.Tx) error { return MoveHandles(tx, "docs", "sub", "moved", true) }); err != nil {
		t.Fatal(err)
	}
	if got := lookupIn(t, all, root, "sub"); !bytes.Equal(got, subFH) {
		t.Fatal("the old name does not answer with the moved directory's handle")
	}
	if got := lookupIn(t, all, subFH, "deep"); got == nil {
		t.Fatal("lookup below the old name")
	}
	es, err := all.ReadDirPlus("/")
	if err != nil {
		t.Fatal(err)
	}
	if entry(es, "sub") != nil || entry(es, "moved") == nil {
		t.Fatalf("listing shows %v", names(es))
	}
	merged := mustMount(t, r.addr, "/docs")
	if _, _, err := merged.Lookup("/sub"); errNum(err) != nfsc.NFS3ErrNoEnt {
		t.Fatalf("the merged view answers for the old name: %v", err)
	}
	// No longer hidden (something was placed there, or the whiteout went):
	// the old name is gone, and stays gone.
	d.hide("sub", false)
	if _, _, err := all.Lookup("/sub"); errNum(err) != nfsc.NFS3ErrNoEnt {
		t.Fatalf("after the old name is no longer hidden: %v", err)
	}
	d.hide("sub", true)
	if _, _, err := all.Lookup("/sub"); errNum(err) != nfsc.NFS3ErrNoEnt {
		t.Fatalf("the alias came back: %v", err)
	}
	// A new directory at the old name gets a handle of its own.
	d.hide("sub", false)
	d.putDir("sub")
	if _, fh, err := all.Lookup("/sub"); err != nil || bytes.Equal(fh, subFH) {
		t.Fatalf("a new directory at the old name: %v (same handle: %v)", err, bytes.Equal(fh, subFH))
	}
}
