//go:build linux

package real_test

import (
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/real"
	bolt "go.etcd.io/bbolt"
)

// observer records what an arena reports.
type observer struct {
	mu     sync.Mutex
	moved  []string
	listed []string
	inTx   bool // every Moved came within a writable transaction
}

func (o *observer) Moved(tx *bolt.Tx, _ realize.ArenaName, from, to realize.Path, oldName bool) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.moved = append(o.moved, string(from)+">"+string(to))
	o.inTx = o.inTx && tx != nil && tx.Writable()
	return nil
}

func (o *observer) Listed(_ realize.ArenaName, dirs []realize.Path) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, d := range dirs {
		o.listed = append(o.listed, "/"+string(d))
	}
}

// take returns and forgets what was reported: the moves in order, the
// directories listed (over several transactions) as a sorted set.
func (o *observer) take() (moved, listed string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	sort.Strings(o.listed)
	moved, listed = strings.Join(o.moved, " "), strings.Join(slices.Compact(o.listed), " ")
	o.moved, o.listed = nil, nil
	return moved, listed
}

func newObservedFixture(t *testing.T) (*fixture, *observer) {
	t.Helper()
	f := newFixture(t)
	o := &observer{inTx: true}
	var err error
	f.arena, err = real.NewArena(real.ArenaOptions{Name: "test", Root: f.root, DB: f.db, Log: f.log, Self: f.self, Workers: 2, Observer: o})
	if err != nil {
		t.Fatal(err)
	}
	return f, o
}

func TestObserverHearsMovesAndListings(t *testing.T) {
	f, o := newObservedFixture(t)
	f.write("a/x.txt", "x")
	f.write("a/s/y.txt", "y")
	f.write("b/z.txt", "z")
	f.scan()
	if moved, listed := o.take(); moved != "" || listed != "/ /a /a/s /b" {
		t.Fatalf("first scan: moved %q, listed %q", moved, listed)
	}

	// A directory moved on disk: recorded as its parts (renames, mkdir,
	// rmdir); the observer hears the directory's move, then the files'.
	if err := os.Rename(filepath.Join(f.root, "a"), filepath.Join(f.root, "c")); err != nil {
		t.Fatal(err)
	}
	f.scan()
	moved, listed := o.take()
	if moved != "a>c a/s/y.txt>c/s/y.txt a/x.txt>c/x.txt" {
		t.Fatalf("directory move: moved %q", moved)
	}
	if listed != "/ /a /a/s /c /c/s" {
		t.Fatalf("directory move: listed %q", listed)
	}

	// A file moved between directories that stay: no directory moved.
	if err := os.Rename(filepath.Join(f.root, "b", "z.txt"), filepath.Join(f.root, "c", "z.txt")); err != nil {
		t.Fatal(err)
	}
	f.scan()
	if moved, listed := o.take(); moved != "b/z.txt>c/z.txt" || listed != "/b /c" {
		t.Fatalf("file move: moved %q, listed %q", moved, listed)
	}

	// A content change keeps every name: nothing listed.
	f.write("c/x.txt", "x, edited")
	f.scan()
	if moved, listed := o.take(); moved != "" || listed != "" {
		t.Fatalf("edit: moved %q, listed %q", moved, listed)
	}
	if !o.inTx {
		t.Fatal("Moved was called outside a writable transaction")
	}
}

func TestRenameDirMovesUnrealFiles(t *testing.T) {
	f, o := newObservedFixture(t)
	f.write("src/r.txt", "real")
	f.write("src/u.txt", "unreal")
	f.write("src/s/u2.txt", "unreal too")
	f.write("dst-parent/keep.txt", "k")
	f.scan()
	f.mustUnpin("src/u.txt", "src/s/u2.txt")
	f.newEntries()
	o.take()

	if err := f.arena.RenameDir(t.Context(), "src", "dst-parent/dst"); err != nil {
		t.Fatal(err)
	}
	f.expect("mkdir dst-parent/dst", "mkdir dst-parent/dst/s", "rename dst-parent/dst/r.txt<-src/r.txt",
		"rename dst-parent/dst/s/u2.txt<-src/s/u2.txt", "rename dst-parent/dst/u.txt<-src/u.txt", "rmdir src/s", "rmdir src")
	f.unrealAt("dst-parent/dst/u.txt")
	f.unrealAt("dst-parent/dst/s/u2.txt")
	if r := f.record("dst-parent/dst/r.txt"); !r.IsReal() {
		t.Fatalf("dst-parent/dst/r.txt: want real, got %+v", r)
	}
	f.absent("src")
	if moved, _ := o.take(); !strings.HasPrefix(moved, "src>dst-parent/dst ") {
		t.Fatalf("moved %q: want the directory's move first", moved)
	}
	f.scan()
	f.expect()

	for _, tc := range []struct{ from, to realize.Path }{
		{"dst-parent/dst", "dst-parent/dst/in"}, // into itself
		{"missing", "elsewhere"},                // nothing there
		{"dst-parent/dst", ""},                  // the arena root
	} {
		if err := f.arena.RenameDir(t.Context(), tc.from, tc.to); err == nil {
			t.Errorf("RenameDir(%q, %q): want an error", tc.from, tc.to)
		}
	}
	f.expect()
}
