package real

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/realizefs/realize"
)

const watchTimeout = 5 * time.Second

func startWatch(t *testing.T, root string, opt WatchOptions) *Watcher {
	t.Helper()
	if opt.Debounce == 0 {
		opt.Debounce = 30 * time.Millisecond
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	w, err := Watch(t.Context(), root, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w
}

// seen accumulates batches.
type seen struct {
	batches  int
	dirs     map[realize.Path]bool
	files    map[realize.Path]bool
	overflow bool
}

func (s *seen) add(b Batch) {
	s.batches++
	for _, d := range b.Dirs {
		s.dirs[d] = true
	}
	for _, f := range b.Files {
		s.files[f] = true
	}
	s.overflow = s.overflow || b.Overflow
}

func (s *seen) String() string {
	return fmt.Sprintf("%d batches, dirs %v, files %v, overflow %v", s.batches, keys(s.dirs), keys(s.files), s.overflow)
}

func keys(m map[realize.Path]bool) []realize.Path {
	var out []realize.Path
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// collect reads batches until done says so, failing the test after a
// timeout.
func collect(t *testing.T, w *Watcher, done func(*seen) bool) *seen {
	t.Helper()
	s := &seen{dirs: map[realize.Path]bool{}, files: map[realize.Path]bool{}}
	timeout := time.After(watchTimeout)
	for !done(s) {
		select {
		case b, ok := <-w.Batches():
			if !ok {
				t.Fatalf("batches closed; got %v", s)
			}
			s.add(b)
		case <-timeout:
			t.Fatalf("timed out; got %v", s)
		case <-t.Context().Done():
			t.Fatal("test context done")
		}
	}
	return s
}

// sentinel creates a file at the root and returns a condition met once it
// was reported: events are delivered in order, so everything done before
// has been seen by then.
func sentinel(t *testing.T, root string) func(*seen) bool {
	t.Helper()
	name := fmt.Sprintf("sentinel-%d", time.Now().UnixNano())
	if err := os.WriteFile(filepath.Join(root, name), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return func(s *seen) bool { return s.files[realize.Path(name)] }
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func put(t *testing.T, root, rel string) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(rel))
	must(t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(t, os.WriteFile(p, []byte(rel), 0o644))
}

func TestWatchReports(t *testing.T) {
	cases := []struct {
		name   string
		setup  []string // files present before watching
		act    func(t *testing.T, root string)
		dirs   []realize.Path
		files  []realize.Path
		absent []realize.Path // must not be reported, in Dirs or Files
	}{
		{
			name: "create file",
			act:  func(t *testing.T, root string) { put(t, root, "new") },
			dirs: []realize.Path{""}, files: []realize.Path{"new"},
		},
		{
			name:  "write file",
			setup: []string{"d/f"},
			act: func(t *testing.T, root string) {
				fh, err := os.OpenFile(filepath.Join(root, "d/f"), os.O_WRONLY|os.O_APPEND, 0)
				must(t, err)
				_, err = fh.Write([]byte("more"))
				must(t, err)
				must(t, fh.Close())
			},
			files: []realize.Path{"d/f"},
		},
		{
			name:  "chmod file",
			setup: []string{"f"},
			act:   func(t *testing.T, root string) { must(t, os.Chmod(filepath.Join(root, "f"), 0o755)) },
			files: []realize.Path{"f"},
		},
		{
			name:  "remove file",
			setup: []string{"d/f"},
			act:   func(t *testing.T, root string) { must(t, os.Remove(filepath.Join(root, "d/f"))) },
			dirs:  []realize.Path{"d"}, files: []realize.Path{"d/f"},
		},
		{
			name:  "rename file across directories",
			setup: []string{"a/f", "b/keep"},
			act: func(t *testing.T, root string) {
				must(t, os.Rename(filepath.Join(root, "a/f"), filepath.Join(root, "b/g")))
			},
			dirs: []realize.Path{"a", "b"}, files: []realize.Path{"a/f", "b/g"},
		},
		{
			name: "mkdir",
			act:  func(t *testing.T, root string) { must(t, os.Mkdir(filepath.Join(root, "d"), 0o755)) },
			dirs: []realize.Path{"", "d"},
		},
		{
			name: "nested directories created quickly",
			act: func(t *testing.T, root string) {
				must(t, os.MkdirAll(filepath.Join(root, "a/b/c"), 0o755))
				must(t, os.WriteFile(filepath.Join(root, "a/b/c/f"), nil, 0o644))
			},
			dirs: []realize.Path{"", "a", "a/b", "a/b/c"},
		},
		{
			name:  "remove tree",
			setup: []string{"t/u/v/f", "t/g"},
			act:   func(t *testing.T, root string) { must(t, os.RemoveAll(filepath.Join(root, "t"))) },
			dirs:  []realize.Path{""},
		},
		{
			name:  "renamed directory is watched under its new name",
			setup: []string{"old/sub/f"},
			act: func(t *testing.T, root string) {
				must(t, os.Rename(filepath.Join(root, "old"), filepath.Join(root, "new")))
				// Let the rename be handled before writing below it.
				time.Sleep(50 * time.Millisecond)
				put(t, root, "new/sub/later")
			},
			dirs:   []realize.Path{"", "new", "new/sub"},
			absent: []realize.Path{"old/sub", "old/sub/later"},
		},
		{
			name: "name that is not a valid path",
			act:  func(t *testing.T, root string) { put(t, root, "d/bad\xff") },
			dirs: []realize.Path{"d"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for _, f := range tc.setup {
				put(t, root, f)
			}
			w := startWatch(t, root, WatchOptions{})
			if !w.Watching() {
				t.Fatal("not watching")
			}
			tc.act(t, root)
			got := collect(t, w, func(s *seen) bool {
				for _, d := range tc.dirs {
					if !s.dirs[d] {
						return false
					}
				}
				for _, f := range tc.files {
					if !s.files[f] {
						return false
					}
				}
				return true
			})
			got2 := collect(t, w, sentinel(t, root))
			for _, p := range tc.absent {
				if got.dirs[p] || got.files[p] || got2.dirs[p] || got2.files[p] {
					t.Errorf("%q reported: %v then %v", p, got, got2)
				}
			}
			for _, s := range []*seen{got, got2} {
				for _, p := range append(keys(s.dirs), keys(s.files)...) {
					if _, err := realize.ParsePath(string(p)); err != nil {
						t.Errorf("reported an invalid path %q", p)
					}
				}
			}
		})
	}
}

func TestWatchSkip(t *testing.T) {
	root := t.TempDir()
	put(t, root, "skipped/old")
	skip := func(p realize.Path, isDir bool) bool {
		return p == "skipped" || p == "new-skipped" || strings.HasSuffix(string(p), ".tmp")
	}
	w := startWatch(t, root, WatchOptions{Skip: skip})
	put(t, root, "skipped/f")          // inside a skipped directory: not even watched
	put(t, root, "new-skipped/inside") // a skipped directory created later
	put(t, root, "sub/x.tmp")
	put(t, root, "sub/real")
	got := collect(t, w, sentinel(t, root))
	for _, p := range append(keys(got.dirs), keys(got.files)...) {
		if strings.Contains(string(p), "skipped") || strings.HasSuffix(string(p), ".tmp") {
			t.Errorf("skipped path %q reported: %v", p, got)
		}
	}
	if !got.dirs["sub"] && !got.files["sub/real"] {
		t.Errorf("sub/real not reported: %v", got)
	}
}

func TestWatchDebounce(t *testing.T) {
	root := t.TempDir()
	w := startWatch(t, root, WatchOptions{Debounce: 300 * time.Millisecond, MaxDelay: 5 * time.Second})
	const n = 50
	for i := range n {
		put(t, root, fmt.Sprintf("f%02d", i))
	}
	got := collect(t, w, func(s *seen) bool { return s.batches > 0 })
	if len(got.files) != n {
		t.Errorf("first batch has %d files, want all %d: %v", len(got.files), n, got)
	}
	select {
	case b := <-w.Batches():
		t.Errorf("a second batch followed: %+v", b)
	case <-time.After(600 * time.Millisecond):
	}
}

func TestWatchMaxDelay(t *testing.T) {
	root := t.TempDir()
	w := startWatch(t, root, WatchOptions{Debounce: 200 * time.Millisecond, MaxDelay: 300 * time.Millisecond})
	stop := make(chan struct{})
	defer close(stop)
	start := time.Now()
	go func() {
		// Never quiet for Debounce: only MaxDelay can send a batch.
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				_ = os.WriteFile(filepath.Join(root, fmt.Sprintf("f%d", i%10)), nil, 0o644)
			}
		}
	}()
	collect(t, w, func(s *seen) bool { return s.batches > 0 })
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("first batch after %v of continuous changes; MaxDelay is 300ms", d)
	}
}

func TestWatchOverflow(t *testing.T) {
	root := t.TempDir()
	w := startWatch(t, root, WatchOptions{MaxPending: 10, Debounce: 200 * time.Millisecond})
	for i := range 30 {
		put(t, root, fmt.Sprintf("f%d", i))
	}
	got := collect(t, w, func(s *seen) bool { return s.overflow })
	if len(got.files) > 10 {
		t.Errorf("held %d paths, more than MaxPending", len(got.files))
	}
}

func TestWatchDegrades(t *testing.T) {
	root := t.TempDir()
	put(t, root, "ok/f")
	w := startWatch(t, root, WatchOptions{failAdd: func(p string) error {
		if filepath.Base(p) == "full" {
			return syscall.ENOSPC
		}
		return nil
	}})
	if !w.Watching() {
		t.Fatal("not watching at start")
	}
	must(t, os.Mkdir(filepath.Join(root, "full"), 0o755))
	collect(t, w, func(s *seen) bool { return s.overflow })
	if w.Watching() {
		t.Error("still claims to watch everything")
	}
	// Existing watches keep reporting.
	put(t, root, "ok/g")
	collect(t, w, func(s *seen) bool { return s.files["ok/g"] })
}

func TestWatchStops(t *testing.T) {
	for _, how := range []string{"close", "cancel"} {
		t.Run(how, func(t *testing.T) {
			root := t.TempDir()
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			w, err := Watch(ctx, root, WatchOptions{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			if how == "close" {
				must(t, w.Close())
			} else {
				cancel()
			}
			timeout := time.After(watchTimeout)
			for {
				select {
				case _, ok := <-w.Batches():
					if !ok {
						must(t, w.Close()) // again: harmless
						return
					}
				case <-timeout:
					t.Fatal("Batches not closed")
				}
			}
		})
	}
}

func TestWatchErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	must(t, os.WriteFile(file, nil, 0o644))
	cases := []struct {
		root string
		kind realize.ErrKind
	}{
		{filepath.Join(dir, "missing"), realize.NotExist},
		{file, realize.Invalid},
	}
	for _, tc := range cases {
		_, err := Watch(t.Context(), tc.root, WatchOptions{})
		if realize.KindOf(err) != tc.kind {
			t.Errorf("Watch(%s): err = %v, want kind %v", tc.root, err, tc.kind)
		}
	}
}

func TestValidParent(t *testing.T) {
	cases := map[string]realize.Path{
		"bad\xff":                       "",
		"a/bad\xff":                     "a",
		"a/bad\xff/c":                   "a",
		"a/" + strings.Repeat("x", 300): "a",
	}
	for rel, want := range cases {
		if got := validParent(rel); got != want {
			t.Errorf("validParent(%q) = %q, want %q", rel, got, want)
		}
	}
}
