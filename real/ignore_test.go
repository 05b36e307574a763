package real

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/realizefs/realize"
)

type ignoreCheck struct {
	path  string
	dir   bool
	want  bool
	noGit bool // Realize's own rule (built-ins, malformed patterns): git disagrees by design
}

func f(path string, want bool) ignoreCheck { return ignoreCheck{path: path, want: want} }
func d(path string, want bool) ignoreCheck { return ignoreCheck{path: path, dir: true, want: want} }

var ignoreCases = []struct {
	name   string
	files  map[string]string // directory -> ignore file content
	checks []ignoreCheck
}{
	{"name at any depth", map[string]string{"": "foo\n"}, []ignoreCheck{
		f("foo", true), d("foo", true), f("a/foo", true), f("a/b/foo", true),
		f("foo.txt", false), f("afoo", false), f("foo/inside", true),
	}},
	{"suffix", map[string]string{"": "*.log\n"}, []ignoreCheck{
		f("x.log", true), f("a/x.log", true), f(".log", true), f("x.logs", false), f("log", false),
	}},
	{"prefix", map[string]string{"": "core.*\n"}, []ignoreCheck{
		f("core.123", true), f("a/core.x", true), f("core", false), f("xcore.1", false),
	}},
	{"negation", map[string]string{"": "*.log\n!keep.log\n"}, []ignoreCheck{
		f("x.log", true), f("keep.log", false), f("a/keep.log", false), f("a/x.log", true),
	}},
	{"later line wins", map[string]string{"": "!keep.log\n*.log\n"}, []ignoreCheck{
		f("keep.log", true),
	}},
	{"leading slash anchors", map[string]string{"": "/build\n"}, []ignoreCheck{
		d("build", true), f("build", true), d("a/build", false), f("build/x", true),
	}},
	{"middle slash anchors", map[string]string{"": "doc/frotz\n"}, []ignoreCheck{
		f("doc/frotz", true), f("a/doc/frotz", false), f("frotz", false),
	}},
	{"trailing slash: directories only", map[string]string{"": "tmp/\n"}, []ignoreCheck{
		d("tmp", true), f("tmp", false), d("a/tmp", true), f("a/tmp", false), f("tmp/x", true), f("a/tmp/x/y", true),
	}},
	{"leading **", map[string]string{"": "**/foo\n"}, []ignoreCheck{
		f("foo", true), f("a/foo", true), f("a/b/foo", true), f("afoo", false),
	}},
	{"middle **", map[string]string{"": "a/**/b\n"}, []ignoreCheck{
		f("a/b", true), f("a/x/b", true), f("a/x/y/b", true), f("x/a/b", false), f("a/bb", false),
	}},
	{"trailing **", map[string]string{"": "abc/**\n"}, []ignoreCheck{
		f("abc/x", true), f("abc/x/y", true), d("abc", false), f("abcd/x", false),
	}},
	{"trailing ** with re-include", map[string]string{"": "abc/**\n!abc/keep\n"}, []ignoreCheck{
		d("abc", false), f("abc/keep", false), f("abc/other", true),
	}},
	{"anchored glob", map[string]string{"": "src/*.o\n"}, []ignoreCheck{
		f("src/x.o", true), f("src/sub/x.o", false), f("x.o", false),
	}},
	{"comments, blanks, escapes", map[string]string{"": "# a comment\n\n   \n\\#hash\n\\!bang\n"}, []ignoreCheck{
		f("# a comment", false), f("#hash", true), f("!bang", true), f("hash", false),
	}},
	{"trailing spaces", map[string]string{"": "foo   \nbar\\ \n"}, []ignoreCheck{
		f("foo", true), f("foo   ", false), f("bar ", true), f("bar", false),
	}},
	{"CRLF line ends", map[string]string{"": "foo\r\n*.bak\r\n"}, []ignoreCheck{
		f("foo", true), f("x.bak", true),
	}},
	{"no re-include below an ignored directory", map[string]string{"": "dir/\n!dir/keep\n"}, []ignoreCheck{
		d("dir", true), f("dir/keep", true), f("dir/sub/keep", true),
	}},
	{"only go files", map[string]string{"": "*\n!*/\n!*.go\n"}, []ignoreCheck{
		d("src", false), f("src/x.go", false), f("src/x.txt", true), f("top.txt", true), f("top.go", false),
	}},
	{"wildcards", map[string]string{"": "?.txt\nfile[0-9].dat\n[!a]*.c\n[[:digit:]]x\n[]]z\n*mid*\n"}, []ignoreCheck{
		f("a.txt", true), f("ab.txt", false), f("file3.dat", true), f("filex.dat", false),
		f("b.c", true), f("a.c", false), f("5x", true), f("ax", false), f("]z", true),
		f("amidb", true), f("mi", false),
	}},
	{"nested files scope their subtree", map[string]string{
		"":    "*.tmp\n",
		"sub": "!keep.tmp\nlocal\n/only\n",
	}, []ignoreCheck{
		f("keep.tmp", true), f("sub/keep.tmp", false), f("sub/x/keep.tmp", false), f("sub/x.tmp", true),
		f("local", false), f("sub/local", true), f("sub/x/local", true),
		f("sub/only", true), f("sub/x/only", false), f("only", false),
	}},
	{"nested file cannot rescue an ignored directory", map[string]string{
		"":         "sub/\n",
		"sub":      "!*\n",
		"sub/deep": "!*\n",
	}, []ignoreCheck{
		d("sub", true), f("sub/x", true), f("sub/deep/x", true),
	}},
	{"malformed patterns are skipped", map[string]string{"": "[unclosed\nok.txt\ntrailing\\\n[[:nope:]]\n"}, []ignoreCheck{
		f("ok.txt", true), {path: "[unclosed", want: false, noGit: true}, {path: "trailing", want: false, noGit: true},
	}},
	{"built-in temporary names", map[string]string{"": "!.realize-tmp-*\n"}, []ignoreCheck{
		{path: ".realize-tmp-123", want: true, noGit: true},
		{path: "a/.realize-tmp-x/y", want: true, noGit: true},
		{path: "a/.realize-tmp-", want: true, noGit: true},
		f("a/x.realize-tmp-1", false),
	}},
	{"no ignore file", nil, []ignoreCheck{f("anything", false), d("a", false), f("a/.realizeignore", false)}},
}

func TestIgnorePatterns(t *testing.T) {
	for _, tc := range ignoreCases {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for dir, content := range tc.files {
				writeIgnore(t, root, dir, content)
			}
			ig, err := NewIgnorer(root, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range tc.checks {
				p, err := realize.ParsePath(c.path)
				if err != nil {
					t.Fatal(err)
				}
				if got := ig.Ignored(p, c.dir); got != c.want {
					t.Errorf("Ignored(%q, dir=%v) = %v, want %v", c.path, c.dir, got, c.want)
				}
			}
		})
	}
}

// TestIgnorePatternsMatchGit checks the expectations above against git
// itself, so that "gitignore semantics" is git's idea, not this file's.
func TestIgnorePatternsMatchGit(t *testing.T) {
	git, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git not installed")
	}
	for _, tc := range ignoreCases {
		t.Run(tc.name, func(t *testing.T) {
			for _, c := range tc.checks {
				if c.noGit {
					continue
				}
				if got := gitIgnores(t, git, tc.files, c); got != c.want {
					t.Errorf("git says %q (dir=%v) ignored=%v; the table says %v", c.path, c.dir, got, c.want)
				}
			}
		})
	}
}

// gitIgnores asks git check-ignore about one path, in a fresh repository
// where the path exists (git asks the disk whether it is a directory).
func gitIgnores(t *testing.T, git string, files map[string]string, c ignoreCheck) bool {
	t.Helper()
	root := t.TempDir()
	run := func(args ...string) error {
		cmd := exec.CommandContext(t.Context(), git, args...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "HOME="+root, "GIT_CONFIG_NOSYSTEM=1", "GIT_CEILING_DIRECTORIES="+filepath.Dir(root))
		return cmd.Run()
	}
	if err := run("init", "-q"); err != nil {
		t.Fatalf("git init: %v", err)
	}
	for dir, content := range files {
		mkdirs(t, filepath.Join(root, dir))
		if err := os.WriteFile(filepath.Join(root, dir, ".gitignore"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(root, c.path)
	mkdirs(t, filepath.Dir(p))
	if c.dir {
		mkdirs(t, p)
	} else if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := run("check-ignore", "-q", "--no-index", "--", c.path)
	var ee *exec.ExitError
	if err != nil && (!errors.As(err, &ee) || ee.ExitCode() != 1) {
		t.Fatalf("git check-ignore %q: %v", c.path, err)
	}
	return err == nil
}

func mkdirs(t testing.TB, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func writeIgnore(t testing.TB, root, dir, content string) {
	t.Helper()
	mkdirs(t, filepath.Join(root, dir))
	if err := os.WriteFile(filepath.Join(root, dir, IgnoreFile), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestIgnoreMalformedIsLogged(t *testing.T) {
	root := t.TempDir()
	writeIgnore(t, root, "", "ok\n[bad\n")
	var buf bytes.Buffer
	ig, err := NewIgnorer(root, slog.New(slog.NewTextHandler(&buf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if !ig.Ignored("ok", false) {
		t.Error("the good pattern after a bad one was lost")
	}
	if out := buf.String(); !strings.Contains(out, "ignore pattern skipped") || !strings.Contains(out, "line=2") {
		t.Errorf("log = %q, want a warning naming line 2", out)
	}
}

func TestIgnoreReload(t *testing.T) {
	root := t.TempDir()
	writeIgnore(t, root, "", "*.a\n")
	writeIgnore(t, root, "sub", "*.b\n")
	ig, err := NewIgnorer(root, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	want := func(p realize.Path, dir, v bool) {
		t.Helper()
		if got := ig.Ignored(p, dir); got != v {
			t.Errorf("Ignored(%q) = %v, want %v", p, got, v)
		}
	}
	want("x.a", false, true)
	want("sub/x.b", false, true)
	want("sub/deep/x.c", false, false)

	// Files are cached until Reload.
	writeIgnore(t, root, "", "*.c\n")
	want("x.a", false, true)
	if err := ig.Reload(""); err != nil {
		t.Fatal(err)
	}
	want("x.a", false, false)
	want("sub/deep/x.c", false, true)

	// A nested file appearing later is read when first needed below it...
	writeIgnore(t, root, "new", "gen/\n")
	want("new/gen", true, true)
	// ...and its removal takes effect on Reload of its directory.
	if err := os.Remove(filepath.Join(root, "new", IgnoreFile)); err != nil {
		t.Fatal(err)
	}
	if err := ig.Reload("new"); err != nil {
		t.Fatal(err)
	}
	want("new/gen", true, false)
	want("new/gen/x", false, false)

	// Reload of a parent forgets the files below it.
	writeIgnore(t, root, "sub", "*.d\n")
	if err := ig.Reload(""); err != nil {
		t.Fatal(err)
	}
	want("sub/x.b", false, false)
	want("sub/x.d", false, true)

	// An unreadable file keeps the old rules and reports why.
	if err := os.Remove(filepath.Join(root, "sub", IgnoreFile)); err != nil {
		t.Fatal(err)
	}
	mkdirs(t, filepath.Join(root, "sub", IgnoreFile))
	if err := ig.Reload("sub"); realize.KindOf(err) != realize.Invalid {
		t.Errorf("Reload of a directory named %s: err = %v, want Invalid", IgnoreFile, err)
	}
	want("sub/x.d", false, true)
}

func TestIgnoreFileNotFollowed(t *testing.T) {
	root := t.TempDir()
	outside := filepath.Join(t.TempDir(), "rules")
	if err := os.WriteFile(outside, []byte("*\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, IgnoreFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := NewIgnorer(root, slog.New(slog.DiscardHandler)); realize.KindOf(err) != realize.Invalid {
		t.Fatalf("root ignore file is a symlink: err = %v, want Invalid", err)
	}
	// Below the root the same is logged and the file has no effect.
	if err := os.Remove(filepath.Join(root, IgnoreFile)); err != nil {
		t.Fatal(err)
	}
	mkdirs(t, filepath.Join(root, "sub"))
	if err := os.Symlink(outside, filepath.Join(root, "sub", IgnoreFile)); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	ig, err := NewIgnorer(root, slog.New(slog.NewTextHandler(&buf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if ig.Ignored("sub/x", false) {
		t.Error("rules from a symlinked ignore file were applied")
	}
	if !strings.Contains(buf.String(), "ignore file unreadable") {
		t.Errorf("log = %q, want a warning", buf.String())
	}
}

func TestIgnoreNoDirectory(t *testing.T) {
	for _, root := range []string{os.DevNull, filepath.Join(t.TempDir(), "missing")} {
		ig, err := NewIgnorer(root, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatalf("%s: %v", root, err)
		}
		if ig.Ignored("x", false) || !ig.Ignored(".realize-tmp-1", false) {
			t.Errorf("%s: an Ignorer without rules must apply only the built-ins", root)
		}
	}
}

func TestIgnoreConcurrent(t *testing.T) {
	root := t.TempDir()
	writeIgnore(t, root, "", "*.o\n")
	for i := range 20 {
		writeIgnore(t, root, fmt.Sprintf("d%d", i), "!keep.o\n")
	}
	ig, err := NewIgnorer(root, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				dir := realize.Path(fmt.Sprintf("d%d/e%d", (i+g)%20, i%7))
				if !ig.Ignored(dir.Join("x.o"), false) || ig.Ignored(dir.Dir().Join("keep.o"), false) {
					t.Error("wrong answer under concurrency")
					return
				}
				if i%500 == 0 {
					if err := ig.Reload(dir.Dir()); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkIgnored(b *testing.B) {
	root := b.TempDir()
	writeIgnore(b, root, "", "*.o\n*.tmp\n/build/\nnode_modules/\n**/cache/*.bin\n!keep.o\n")
	writeIgnore(b, root, "src", "*.gen.go\n")
	ig, err := NewIgnorer(root, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	paths := []realize.Path{"src/pkg/sub/file.go", "src/pkg/sub/file.o", "docs/readme.md", "a/b/c/d/e/f.txt"}
	for b.Loop() {
		for _, p := range paths {
			ig.Ignored(p, false)
		}
	}
}
