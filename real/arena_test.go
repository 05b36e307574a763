package real_test

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/history"
	"github.com/realizefs/realize/internal/store"
	"github.com/realizefs/realize/real"
	"github.com/zeebo/blake3"
	bolt "go.etcd.io/bbolt"
)

type signer struct{ priv ed25519.PrivateKey }

func (s signer) ID() (p realize.PeerID)           { copy(p[:], s.priv.Public().(ed25519.PublicKey)); return p }
func (s signer) Sign(m []byte) ([]byte, error)    { return ed25519.Sign(s.priv, m), nil }
func verify(p realize.PeerID, m, sig []byte) bool { return ed25519.Verify(p[:], m, sig) }

// fixture is one arena over a temporary directory, with its own database.
type fixture struct {
	t     *testing.T
	root  string
	db    *store.DB
	log   *history.Log
	self  realize.PeerID
	arena *real.Arena
	seen  uint64 // history entries already returned by newEntries
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	s := signer{ed25519.NewKeyFromSeed(make([]byte, 32))}
	data := t.TempDir()
	db, err := store.Open(t.Context(), data, store.Options{Peer: s.ID()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f := &fixture{t: t, root: t.TempDir(), db: db, self: s.ID(), log: history.New(s.ID(), s, nil)}
	f.arena, err = real.NewArena(real.ArenaOptions{Name: "test", Root: f.root, DB: db, Log: f.log, Self: s.ID(), Workers: 2,
		DeleteGuard: func() float64 { return 0 }}) // the guard has its own tests (guard_test.go)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) write(rel, content string) {
	f.t.Helper()
	p := filepath.Join(f.root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) scan() {
	f.t.Helper()
	if err := f.arena.ScanAll(f.t.Context()); err != nil {
		f.t.Fatal(err)
	}
}

// newEntries returns "op path[<-from]" for entries recorded since the last call.
func (f *fixture) newEntries() []string {
	f.t.Helper()
	var out []string
	err := f.db.View(func(tx *bolt.Tx) error {
		return f.log.Scan(tx, "test", f.self, f.seen+1, func(e *realize.Entry, _ realize.Hash) error {
			s := e.Op.String() + " " + string(e.Path)
			if e.From != "" {
				s += "<-" + string(e.From)
			}
			out = append(out, s)
			f.seen = e.Seq
			return nil
		})
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return out
}

func (f *fixture) expect(want ...string) {
	f.t.Helper()
	got := f.newEntries()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		f.t.Fatalf("entries:\n  got  %q\n  want %q", got, want)
	}
}

func (f *fixture) record(p realize.Path) *real.Record {
	f.t.Helper()
	var r *real.Record
	f.db.View(func(tx *bolt.Tx) error {
		ix, err := real.OpenIndex(tx, "test")
		if err == nil {
			r, err = ix.Get(p)
		}
		return err
	})
	return r
}

func TestScanRecordsEveryKindOfChange(t *testing.T) {
	f := newFixture(t)
	f.write("a.txt", "alpha")
	f.write("docs/b.txt", "bravo")
	f.write("docs/deep/c.txt", "charlie")
	os.Mkdir(filepath.Join(f.root, "empty"), 0o755)
	os.Symlink("../a.txt", filepath.Join(f.root, "docs", "link"))
	f.scan()
	f.expect("mkdir docs", "mkdir docs/deep", "mkdir empty", "symlink docs/link",
		"add a.txt", "add docs/b.txt", "add docs/deep/c.txt")

	// Hashes are BLAKE3 of the content, as b3sum prints them.
	if r := f.record("docs/b.txt"); r == nil || r.Meta.Blob != realize.Hash(blake3.Sum256([]byte("bravo"))) || r.Meta.Size != 5 {
		t.Fatalf("record for docs/b.txt = %+v", r)
	}
	if r := f.record("docs/link"); r == nil || r.Meta.Target != "../a.txt" {
		t.Fatalf("symlink record = %+v", r)
	}

	f.scan()
	f.expect() // nothing changed: nothing recorded

	f.write("a.txt", "alpha, edited")
	os.Chmod(filepath.Join(f.root, "docs/b.txt"), 0o755)
	f.scan()
	f.expect("replace a.txt", "replace docs/b.txt")
	if r := f.record("docs/b.txt"); !r.Meta.Exec {
		t.Error("exec bit not recorded")
	}

	os.Rename(filepath.Join(f.root, "a.txt"), filepath.Join(f.root, "z.txt"))
	f.scan()
	f.expect("rename z.txt<-a.txt")

	os.Rename(filepath.Join(f.root, "docs"), filepath.Join(f.root, "papers"))
	f.scan()
	f.expect("mkdir papers", "mkdir papers/deep", "symlink papers/link",
		"rename papers/b.txt<-docs/b.txt", "rename papers/deep/c.txt<-docs/deep/c.txt",
		"remove docs/link", "rmdir docs/deep", "rmdir docs")

	os.RemoveAll(filepath.Join(f.root, "papers"))
	os.Remove(filepath.Join(f.root, "empty"))
	f.scan()
	f.expect("remove papers/link", "remove papers/deep/c.txt", "remove papers/b.txt", "rmdir papers/deep", "rmdir papers", "rmdir empty")

	// A file replaced by a directory of the same name.
	os.Remove(filepath.Join(f.root, "z.txt"))
	f.write("z.txt/inner", "x")
	f.scan()
	f.expect("remove z.txt", "mkdir z.txt", "add z.txt/inner")

	c, _ := f.arena.Counts()
	if c.Files != 1 || c.Dirs != 1 || c.Bytes != 1 || c.Symlinks != 0 {
		t.Errorf("counts = %+v", c)
	}
	checkConsistent(t, f)
}

func TestVersionsFollowHistory(t *testing.T) {
	f := newFixture(t)
	f.write("f", "1")
	f.scan()
	f.write("f", "22")
	f.scan()
	r := f.record("f")
	if r.Version[f.self] != 2 || len(r.Version) != 1 {
		t.Fatalf("version = %v, want {self:2}", r.Version)
	}
	os.Remove(filepath.Join(f.root, "f"))
	f.scan()
	r = f.record("f")
	if !r.Deleted || r.Version[f.self] != 3 {
		t.Fatalf("tombstone = %+v", r)
	}
	f.write("f", "333")
	f.scan()
	f.expect("add f", "replace f", "remove f", "add f")
	if r := f.record("f"); r.Deleted || r.Version[f.self] != 4 {
		t.Fatalf("recreated = %+v", r)
	}
}

func TestScanSkipsWhatItMustNotIndex(t *testing.T) {
	f := newFixture(t)
	f.write("ok\nnewline", "n")
	f.write("bad\xffname", "b")
	f.write(".realize-tmp-123", "ours")
	os.Symlink("loop", filepath.Join(f.root, "loop"))
	if err := syscall.Mkfifo(filepath.Join(f.root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.scan()
	f.expect("symlink loop", "add ok\nnewline")
	st, _ := f.arena.Status()
	reasons := map[string]string{}
	for _, s := range st.Skipped {
		reasons[s.Path] = s.Reason
	}
	if !strings.Contains(reasons["bad\xffname"], "UTF-8") || !strings.Contains(reasons["fifo"], "regular") {
		t.Fatalf("skipped = %q", st.Skipped)
	}
}

func TestOwnDataDirectoryIsNotIndexed(t *testing.T) {
	s := signer{ed25519.NewKeyFromSeed(make([]byte, 32))}
	root := t.TempDir()
	data := filepath.Join(root, ".data")
	os.Mkdir(data, 0o700)
	db, err := store.Open(t.Context(), data, store.Options{Peer: s.ID()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	os.WriteFile(filepath.Join(root, "x"), []byte("x"), 0o644)
	a, err := real.NewArena(real.ArenaOptions{Name: "test", Root: root, DB: db, Log: history.New(s.ID(), s, nil), Self: s.ID(), Exclude: []string{data}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.ScanAll(t.Context()); err != nil {
		t.Fatal(err)
	}
	c, _ := a.Counts()
	if c.Files != 1 || c.Dirs != 0 {
		t.Fatalf("counts = %+v: the data directory was indexed", c)
	}
}

func TestIgnoreFile(t *testing.T) {
	f := newFixture(t)
	f.write(".realizeignore", "*.tmp\nbuild/\n")
	f.write("keep.txt", "k")
	f.write("junk.tmp", "j")
	f.write("build/out.o", "o")
	f.scan()
	f.expect("add .realizeignore", "add keep.txt")
}

// checkConsistent replays the peer's own history and compares the result
// with the index: every live record is what the last entry for its path
// says, and every path whose last entry is a removal is a tombstone.
func checkConsistent(t *testing.T, f *fixture) {
	t.Helper()
	if err := real.CheckAgainstHistory(f.db, "test", f.log, f.self); err != nil {
		t.Fatal(err)
	}
	f.db.View(func(tx *bolt.Tx) error {
		if v := f.log.Verify(tx, "test", f.self, verify); v.Err != nil {
			t.Fatal(v.Err)
		}
		return nil
	})
}

// TestRenameAfterHiddenRewrite: a file rewritten with its mtime restored
// (cp -p, rsync -t) and then renamed is recorded as a rename of the old
// content — the stat cannot tell — but the destination is marked for
// rehashing, and the next scan records the real content.
func TestRenameAfterHiddenRewrite(t *testing.T) {
	f := newFixture(t)
	f.write("f", "aaaa")
	old := time.Now().Add(-time.Hour)
	os.Chtimes(filepath.Join(f.root, "f"), old, old)
	f.scan()
	f.scan() // no longer racy: the stat is trusted
	f.write("f", "bbbb")
	os.Chtimes(filepath.Join(f.root, "f"), old, old)
	os.Rename(filepath.Join(f.root, "f"), filepath.Join(f.root, "g"))
	f.scan()
	f.scan()
	if r := f.record("g"); r.Meta.Blob != realize.Hash(blake3.Sum256([]byte("bbbb"))) {
		t.Fatalf("g recorded as %s, disk holds bbbb", r.Meta.Blob.Short())
	}
	checkConsistent(t, f)
}
