//go:build linux

package real_test

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/real"
	"golang.org/x/sys/unix"
)

// The real directory as overlayfs' upper layer: the kernel's marks
// (whiteouts, opaque directories, redirects) are faked here as the kernel
// writes them; test/kernel/scripts/overlay.sh has the real kernel make them.

// unpin makes path unreal, its bytes moved into dir (a stand-in cache).
func (f *fixture) unpin(path realize.Path, cache string) error {
	f.t.Helper()
	return f.arena.Unrealize(f.t.Context(), path, func(*real.Record) error { return nil },
		func(abs string, rec *real.Record, _ realize.BlockMap) error {
			return os.Rename(abs, filepath.Join(cache, rec.Meta.Blob.String()))
		})
}

func (f *fixture) mustUnpin(paths ...realize.Path) {
	f.t.Helper()
	cache := f.t.TempDir()
	for _, p := range paths {
		if err := f.unpin(p, cache); err != nil {
			f.t.Fatalf("unpin %s: %v", p, err)
		}
	}
}

// whiteout makes the kernel's whiteout (a character device 0:0) at rel.
func (f *fixture) whiteout(rel string) {
	f.t.Helper()
	if err := syscall.Mknod(filepath.Join(f.root, rel), syscall.S_IFCHR, 0); err != nil {
		if errors.Is(err, syscall.EPERM) {
			f.t.Skipf("cannot make a whiteout (mknod needs CAP_MKNOD): %v", err)
		}
		f.t.Fatal(err)
	}
}

// setXattr sets a trusted.* xattr as overlayfs does, skipping the test
// where that is not permitted.
func (f *fixture) setXattr(rel, name, value string) {
	f.t.Helper()
	if err := unix.Lsetxattr(filepath.Join(f.root, rel), name, []byte(value), 0); err != nil {
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.ENOTSUP) {
			f.t.Skipf("cannot set %s (needs CAP_SYS_ADMIN and xattr support): %v", name, err)
		}
		f.t.Fatal(err)
	}
}

func (f *fixture) hasXattr(rel, name string) bool {
	_, err := unix.Lgetxattr(filepath.Join(f.root, rel), name, make([]byte, 256))
	return err == nil
}

func (f *fixture) absent(rel string) {
	f.t.Helper()
	if _, err := os.Lstat(filepath.Join(f.root, rel)); !errors.Is(err, os.ErrNotExist) {
		f.t.Fatalf("%s: want nothing on disk, got %v", rel, err)
	}
}

func (f *fixture) unrealAt(p realize.Path) {
	f.t.Helper()
	if r := f.record(p); !r.IsUnreal() {
		f.t.Fatalf("%s: want an unreal record, got %+v", p, r)
	}
}

func TestOverlayWhiteoutIsADelete(t *testing.T) {
	f := newFixture(t)
	f.write("a/x.txt", "x")
	f.write("a/y.txt", "y")
	f.write("z.txt", "z")
	f.scan()
	f.newEntries()
	f.mustUnpin("a/x.txt", "z.txt")
	f.newEntries()

	// rm through the overlay: an unreal file (nothing in the upper) and a
	// real one (removed from the upper) both leave a whiteout.
	f.whiteout("z.txt")
	if err := os.Remove(filepath.Join(f.root, "a/y.txt")); err != nil {
		t.Fatal(err)
	}
	f.whiteout("a/y.txt")
	f.scan()
	f.expect("remove z.txt", "remove a/y.txt")
	f.absent("z.txt") // consumed: the lower no longer shows the file
	f.absent("a/y.txt")
	if r := f.record("z.txt"); r == nil || !r.Deleted {
		t.Fatalf("z.txt: want a tombstone, got %+v", r)
	}
	f.unrealAt("a/x.txt")

	// The whole directory, as rm -rf through the overlay leaves it.
	if err := os.RemoveAll(filepath.Join(f.root, "a")); err != nil {
		t.Fatal(err)
	}
	f.whiteout("a")
	f.scan()
	f.expect("remove a/x.txt", "rmdir a")
	f.absent("a")

	// A whiteout where the index holds nothing is stale: removed, not
	// indexed, not reported.
	f.whiteout("stale")
	f.scan()
	f.expect()
	f.absent("stale")
	if st, _ := f.arena.Status(); len(st.Skipped) != 0 {
		t.Fatalf("skipped: %+v", st.Skipped)
	}
}

func TestOverlayOpaqueDirHidesTheLower(t *testing.T) {
	f := newFixture(t)
	f.write("d/u1.txt", "1")
	f.write("d/u2.txt", "2")
	f.write("d/r.txt", "r")
	f.write("e/u3.txt", "3")
	f.scan()
	f.mustUnpin("d/u1.txt", "d/u2.txt", "e/u3.txt")
	f.newEntries()

	f.setXattr("d", "trusted.overlay.opaque", "y")
	f.scan()
	f.expect("remove d/u2.txt", "remove d/u1.txt")
	if f.record("d/r.txt") == nil || !f.record("d/r.txt").IsReal() {
		t.Fatal("d/r.txt (in the upper) must stay")
	}
	f.unrealAt("e/u3.txt") // not below the opaque directory
	if f.hasXattr("d", "trusted.overlay.opaque") {
		t.Fatal("the opaque mark is not cleared once recorded")
	}
	// Cleared: what other peers add below d later is not deleted again.
	f.scan()
	f.expect()
}

func TestOverlayRedirectMovesUnrealFiles(t *testing.T) {
	f := newFixture(t)
	f.write("src/r.txt", "real")
	f.write("src/u.txt", "unreal")
	f.write("src/s/u2.txt", "unreal too")
	f.write("keep/k.txt", "k")
	f.scan()
	f.mustUnpin("src/u.txt", "src/s/u2.txt")
	f.newEntries()

	// mv src dst through an overlay with redirect_dir=on: the upper
	// directory (with the real file) moves, a redirect names the source,
	// a whiteout hides the source.
	if err := os.Rename(filepath.Join(f.root, "src"), filepath.Join(f.root, "dst")); err != nil {
		t.Fatal(err)
	}
	f.setXattr("dst", "trusted.overlay.redirect", "src")
	f.whiteout("src")
	f.scan()
	f.expect("mkdir dst", "mkdir dst/s", "rename dst/r.txt<-src/r.txt", "rename dst/s/u2.txt<-src/s/u2.txt",
		"rename dst/u.txt<-src/u.txt", "rmdir src/s", "rmdir src")
	f.unrealAt("dst/u.txt")
	f.unrealAt("dst/s/u2.txt")
	if r := f.record("dst/r.txt"); !r.IsReal() {
		t.Fatalf("dst/r.txt: want real, got %+v", r)
	}
	for _, p := range []realize.Path{"src/u.txt", "src/s/u2.txt", "src"} {
		if r := f.record(p); r == nil || !r.Deleted {
			t.Fatalf("%s: want a tombstone, got %+v", p, r)
		}
	}
	// The whiteout at the old name stays (the kernel still looks the
	// directory up under it: decision 0014); the redirect is cleared.
	f.isWhiteout("src")
	if f.hasXattr("dst", "trusted.overlay.redirect") {
		t.Fatal("the redirect is not cleared once recorded")
	}
	f.scan()
	f.expect()
	f.isWhiteout("src")

	// An absolute redirect, into another directory.
	if err := os.Rename(filepath.Join(f.root, "dst", "s"), filepath.Join(f.root, "keep", "moved")); err != nil {
		t.Fatal(err)
	}
	f.setXattr("keep/moved", "trusted.overlay.redirect", "/dst/s")
	f.whiteout("dst/s")
	f.scan()
	f.expect("mkdir keep/moved", "rename keep/moved/u2.txt<-dst/s/u2.txt", "rmdir dst/s")
	f.unrealAt("keep/moved/u2.txt")
	f.scan()
	f.expect()
	f.isWhiteout("dst/s")

	// Another peer puts a file below the old name: the kept whiteout goes
	// (it would hide the file through the mount).
	alt, fill := remoteFile("new in src", 1_000_000_000, realize.VersionVector{remote: 1})
	if err := apply(t, f, "src/new.txt", realize.OpAdd, alt, fill); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(f.root, "src", "new.txt")); err != nil || string(got) != "new in src" {
		t.Fatalf("src/new.txt: %q %v", got, err)
	}
	// And an unreal one below the other: its whiteout goes too.
	alt.Meta.Size, alt.Meta.Blob = 3, realize.Hash{7}
	err := f.arena.Place(t.Context(), "dst/s/far.txt", func([]realize.Alternative) (*real.Change, error) {
		return &real.Change{Op: realize.OpAdd, Result: alt, Unreal: true}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	f.absent("dst/s")
	f.unrealAt("dst/s/far.txt")
}

func (f *fixture) isWhiteout(rel string) {
	f.t.Helper()
	info, err := os.Lstat(filepath.Join(f.root, rel))
	if err != nil || info.Mode()&os.ModeCharDevice == 0 {
		f.t.Fatalf("%s: want a whiteout, got %v %v", rel, info, err)
	}
}

func TestUnpinRefusesAnOpenFile(t *testing.T) {
	f := newFixture(t)
	f.write("open.txt", "being written")
	f.scan()
	f.newEntries()
	w, err := os.OpenFile(filepath.Join(f.root, "open.txt"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	err = f.unpin("open.txt", t.TempDir())
	var re *realize.Error
	if !errors.As(err, &re) || re.Kind != realize.Busy {
		w.Close()
		t.Fatalf("unpin of a file open for writing: want a busy error, got %v", err)
	}
	if r := f.record("open.txt"); !r.IsReal() {
		t.Fatalf("refused unpin changed the record: %+v", r)
	}
	f.expect()
	// The writer goes on writing into the real file.
	if _, err := w.WriteString(" and more"); err != nil {
		t.Fatal(err)
	}
	w.Close()
	f.scan()
	f.expect("replace open.txt")
	f.mustUnpin("open.txt")
	f.expect("unrealize open.txt")
}
