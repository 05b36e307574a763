package real_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/real"
	"github.com/zeebo/blake3"
	bolt "go.etcd.io/bbolt"
)

var remote = realize.PeerID{0xee}

// remoteFile is a version of a file made by another peer, with a filler
// that writes its bytes.
func remoteFile(content string, mtime int64, v realize.VersionVector) (realize.Alternative, func(context.Context, *os.File, *real.Landed) error) {
	alt := realize.Alternative{Origin: remote, Version: v, Meta: realize.Meta{Kind: realize.KindFile, Size: int64(len(content)),
		MTime: mtime, Blob: realize.Hash(blake3.Sum256([]byte(content)))}}
	return alt, func(_ context.Context, f *os.File, _ *real.Landed) error {
		_, err := f.WriteString(content)
		return err
	}
}

func apply(t *testing.T, f *fixture, p realize.Path, op realize.Op, alt realize.Alternative, fill func(context.Context, *os.File, *real.Landed) error, losers ...realize.Alternative) error {
	t.Helper()
	return f.arena.Place(t.Context(), p, func([]realize.Alternative) (*real.Change, error) {
		return &real.Change{Op: op, Result: alt, Fill: fill, Losers: losers}, nil
	})
}

func TestPlaceRemoteChanges(t *testing.T) {
	f := newFixture(t)
	f.scan()
	alt, fill := remoteFile("from afar", 1_000_000_000, realize.VersionVector{remote: 1})
	if err := apply(t, f, "in/new.txt", realize.OpAdd, alt, fill); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(f.root, "in/new.txt"))
	if string(got) != "from afar" {
		t.Fatalf("content %q", got)
	}
	info, _ := os.Stat(filepath.Join(f.root, "in/new.txt"))
	if info.ModTime().UnixNano() != 1_000_000_000 {
		t.Errorf("mtime %v not propagated", info.ModTime())
	}
	r := f.record("in/new.txt")
	if r.Origin != remote || r.Version.Compare(alt.Version) != realize.Equal {
		t.Errorf("record %+v", r)
	}
	// The scanner sees nothing new in what was placed (the parent directory
	// was created by placing; its own mkdir comes from the remote log).
	f.newEntries()
	f.scan()
	if es := f.newEntries(); len(es) > 1 || len(es) == 1 && es[0] != "mkdir in" {
		t.Fatalf("rescan after placing recorded %q", es)
	}

	// Exec bit, and removal.
	alt2, fill2 := remoteFile("v2", 2_000_000_000, realize.VersionVector{remote: 2})
	alt2.Meta.Exec = true
	if err := apply(t, f, "in/new.txt", realize.OpReplace, alt2, fill2); err != nil {
		t.Fatal(err)
	}
	if info, _ := os.Stat(filepath.Join(f.root, "in/new.txt")); info.Mode()&0o100 == 0 {
		t.Error("exec bit not set")
	}
	if err := apply(t, f, "in/new.txt", realize.OpRemove, realize.Alternative{Origin: remote, Version: realize.VersionVector{remote: 3}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(f.root, "in/new.txt")); !os.IsNotExist(err) {
		t.Fatal("not removed")
	}
	// Symlink.
	link := realize.Alternative{Origin: remote, Version: realize.VersionVector{remote: 4}, Meta: realize.Meta{Kind: realize.KindSymlink, Target: "../x"}}
	if err := apply(t, f, "in/link", realize.OpSymlink, link, nil); err != nil {
		t.Fatal(err)
	}
	if target, _ := os.Readlink(filepath.Join(f.root, "in/link")); target != "../x" {
		t.Fatalf("symlink target %q", target)
	}
	checkConsistent(t, f)
}

func TestPlaceRefusesBadContent(t *testing.T) {
	f := newFixture(t)
	alt, _ := remoteFile("the real thing", 1, realize.VersionVector{remote: 1})
	_, liar := remoteFile("something else!", 1, nil)
	err := apply(t, f, "x", realize.OpAdd, alt, liar)
	if realize.KindOf(err) != realize.Corrupt {
		t.Fatalf("err = %v, want corrupt", err)
	}
	ents, _ := os.ReadDir(f.root)
	if len(ents) != 0 {
		t.Fatalf("left behind: %v", ents)
	}
}

// TestPlaceNeverOverwritesUnrecordedEdit: a local edit the scanner has not
// recorded yet is recorded first and shown to the decider, which sees the
// new local version — the remote change is not placed blindly over it.
func TestPlaceNeverOverwritesUnrecordedEdit(t *testing.T) {
	f := newFixture(t)
	f.write("doc.txt", "v1")
	f.scan()
	base := f.record("doc.txt").Version
	f.write("doc.txt", "local edit, not yet scanned")
	alt, fill := remoteFile("remote edit", 5, base.With(remote, 1))
	var seen realize.Alternative
	err := f.arena.Place(t.Context(), "doc.txt", func(front []realize.Alternative) (*real.Change, error) {
		local := front[0]
		seen = local
		if alt.Version.Compare(local.Version) != realize.After {
			return nil, nil // concurrent now: consensus would resolve; here we just refuse
		}
		return &real.Change{Op: realize.OpReplace, Result: alt, Fill: fill}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen.Meta.Blob != realize.Hash(blake3.Sum256([]byte("local edit, not yet scanned"))) {
		t.Fatalf("decider saw %+v, not the local edit", seen.Meta)
	}
	got, _ := os.ReadFile(filepath.Join(f.root, "doc.txt"))
	if string(got) != "local edit, not yet scanned" {
		t.Fatalf("local edit overwritten: %q", got)
	}
}

func TestPlaceMovesLocalLoserAside(t *testing.T) {
	f := newFixture(t)
	f.write("doc.txt", "mine")
	f.scan()
	mine := f.record("doc.txt").Alternative()
	theirs, fill := remoteFile("theirs", 9, realize.VersionVector{remote: 1})
	merged := theirs
	merged.Version = mine.Version.Merge(theirs.Version)
	err := f.arena.Place(t.Context(), "doc.txt", func([]realize.Alternative) (*real.Change, error) {
		return &real.Change{Op: realize.OpReplace, Result: merged, Own: theirs.Version, Fill: fill,
			Others: []realize.Alternative{mine}, Losers: []realize.Alternative{mine}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if r := f.record("doc.txt"); len(r.Others) != 1 || r.Own.Compare(theirs.Version) != realize.Equal {
		t.Errorf("record frontier: own %v others %+v", r.Own, r.Others)
	}
	got, _ := os.ReadFile(filepath.Join(f.root, "doc.txt"))
	kept, ok := f.arena.ConflictBytes(mine.Meta.Blob)
	keptBytes, _ := os.ReadFile(kept)
	if string(got) != "theirs" || !ok || string(keptBytes) != "mine" {
		t.Fatalf("path %q, kept %v %q", got, ok, keptBytes)
	}
	f.db.View(func(tx *bolt.Tx) error {
		ix, _ := real.OpenIndex(tx, "test")
		cs, err := ix.Conflicts("")
		if err != nil || len(cs) != 1 || cs[0].Path != "doc.txt" || cs[0].Meta.Blob != mine.Meta.Blob {
			t.Errorf("conflicts = %+v, %v", cs, err)
		}
		return nil
	})
	// The conflict directory is the daemon's own: never indexed.
	f.scan()
	if c, _ := f.arena.Counts(); c.Files != 1 {
		t.Errorf("counts %+v", c)
	}
	checkConsistent(t, f)
}

// TestPlaceNeverWritesThroughSymlinks: a symlinked directory inside the
// arena (made locally or sent by a peer) is never a way out of it.
func TestPlaceNeverWritesThroughSymlinks(t *testing.T) {
	f := newFixture(t)
	outside := t.TempDir()
	link := realize.Alternative{Origin: remote, Version: realize.VersionVector{remote: 1}, Meta: realize.Meta{Kind: realize.KindSymlink, Target: outside}}
	if err := apply(t, f, "escape", realize.OpSymlink, link, nil); err != nil {
		t.Fatal(err)
	}
	alt, fill := remoteFile("pwned", 1, realize.VersionVector{remote: 2})
	err := apply(t, f, "escape/victim.txt", realize.OpAdd, alt, fill)
	if realize.KindOf(err) != realize.Invalid {
		t.Fatalf("write through a symlink: %v", err)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("something was written outside the arena: %v", ents)
	}
	err = apply(t, f, "escape/victim.txt", realize.OpRemove, realize.Alternative{Origin: remote, Version: realize.VersionVector{remote: 3}}, nil)
	if realize.KindOf(err) != realize.Invalid {
		t.Fatalf("remove through a symlink: %v", err)
	}
}

// TestScanNeverReadsThroughSymlinkedDirs: a watcher event or a placement
// naming a path under a symlinked directory does not index what lies
// outside the arena.
func TestScanNeverReadsThroughSymlinkedDirs(t *testing.T) {
	f := newFixture(t)
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("not yours"), 0o644)
	os.Symlink(outside, filepath.Join(f.root, "door"))
	f.scan()
	if err := f.arena.ScanPaths(t.Context(), []realize.Path{"door"}, []realize.Path{"door/secret"}); err != nil {
		t.Fatal(err)
	}
	if r := f.record("door/secret"); r != nil {
		t.Fatalf("indexed a file outside the arena: %+v", r)
	}
	alt, fill := remoteFile("x", 1, realize.VersionVector{remote: 1})
	if err := apply(t, f, "door/secret", realize.OpReplace, alt, fill); realize.KindOf(err) != realize.Invalid {
		t.Fatalf("placing through a symlinked dir: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(outside, "secret")); string(got) != "not yours" {
		t.Fatal("outside file changed")
	}
}

// A transfer cut short keeps its temporary file for a resumed attempt;
// once a newer version of the path is placed, it is of no use and goes.
func TestPlaceDropsStaleTemporaryFiles(t *testing.T) {
	f := newFixture(t)
	f.scan()
	v1, _ := remoteFile("version 1", 1_000_000_000, realize.VersionVector{remote: 1})
	failing := func(_ context.Context, f *os.File, _ *real.Landed) error {
		f.WriteString("ver")
		return &realize.Error{Op: "fetch", Kind: realize.Unavailable}
	}
	if err := apply(t, f, "d/w.txt", realize.OpAdd, v1, failing); realize.KindOf(err) != realize.Unavailable {
		t.Fatalf("a failed transfer: %v", err)
	}
	temps := func() []string {
		ms, _ := filepath.Glob(filepath.Join(f.root, "d", real.TempPrefix+"*"))
		return ms
	}
	if len(temps()) != 1 {
		t.Fatalf("want the cut transfer's temporary file kept, got %v", temps())
	}
	v2, fill := remoteFile("version 2", 2_000_000_000, realize.VersionVector{remote: 2})
	if err := apply(t, f, "d/w.txt", realize.OpAdd, v2, fill); err != nil {
		t.Fatal(err)
	}
	if got := temps(); len(got) != 0 {
		t.Fatalf("temporary files left after a newer version was placed: %v", got)
	}
}
