package control

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/realizefs/realize"
)

// fakeBackend serves canned answers and records the queries it got.
type fakeBackend struct {
	records []LogRecord
	failAt  int   // Log fails after this many records; -1 never
	err     error // returned by Status and Verify when set
	queries []LogQuery
}

func (f *fakeBackend) Status(ctx context.Context) (*StatusReport, error) {
	if f.err != nil {
		return nil, f.err
	}
	return &StatusReport{Daemon: DaemonStatus{Running: true, PID: 42, Name: "laptop"},
		Arenas: []ArenaStatus{{Name: "docs", Files: 3}}}, nil
}

func (f *fakeBackend) Log(ctx context.Context, q LogQuery, emit func(*LogRecord) error) error {
	f.queries = append(f.queries, q)
	for i := range f.records {
		if i == f.failAt {
			return &realize.Error{Op: "read history", Kind: realize.Corrupt, Arena: "docs", Err: errors.New("bad chain")}
		}
		if q.Arena != "" && f.records[i].Arena != q.Arena {
			continue
		}
		if err := emit(&f.records[i]); err != nil {
			return err
		}
	}
	if f.failAt == len(f.records) {
		return &realize.Error{Op: "read history", Kind: realize.Corrupt, Err: errors.New("at end")}
	}
	return nil
}

func (f *fakeBackend) Verify(ctx context.Context, q LogQuery) (*VerifyReport, error) {
	if f.err != nil {
		return nil, f.err
	}
	return &VerifyReport{OK: false, Logs: []LogVerification{{Arena: "docs", Entries: 2, OK: false, Problem: "entry 2: bad prev hash"}}}, nil
}

func (f *fakeBackend) Conflicts(ctx context.Context, arena realize.ArenaName) ([]ConflictRecord, error) {
	if f.err != nil {
		return nil, f.err
	}
	size := int64(3)
	return []ConflictRecord{{Arena: "docs", Path: "a.txt", Kind: "file", Hash: &realize.Hash{1}, Size: &size, Local: true}}, nil
}

func (f *fakeBackend) Resolve(ctx context.Context, req ResolveRequest) (*ResolveReport, error) {
	if f.err != nil {
		return nil, f.err
	}
	return &ResolveReport{Arena: "docs", Path: realize.Path(strings.TrimPrefix(req.Path, "docs:")),
		Kept: ConflictRecord{Version: req.Keep, Current: true}, Dropped: []ConflictRecord{{Version: "x"}}}, nil
}

func (f *fakeBackend) Pin(ctx context.Context, req PathRequest, progress func(*PinEvent) error) error {
	if f.err != nil {
		return f.err
	}
	for i := range 3 {
		if err := progress(&PinEvent{Arena: "docs", Path: realize.Path(req.Paths[0]), Files: 3, FilesDone: i + 1, Done: i == 2}); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeBackend) Unpin(ctx context.Context, req PathRequest) (*UnpinReport, error) {
	if f.err != nil {
		return nil, f.err
	}
	return &UnpinReport{Files: len(req.Paths), Kept: []PathFailure{{Arena: "docs", Path: "only.txt", Reason: "last copy"}}}, nil
}

func (f *fakeBackend) PathStatus(ctx context.Context, path string) (*PathStatus, error) {
	if f.err != nil {
		return nil, f.err
	}
	return &PathStatus{Arena: "docs", Path: realize.Path(path), Kind: "file", Mark: "pinned", State: "real"}, nil
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// serve starts a server for b on a socket under a fresh data dir and
// returns a client for it.
func serve(t *testing.T, b Backend) (*Client, string) {
	t.Helper()
	data := shortTempDir(t)
	path := SocketPath(data)
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(b, discard())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	c := NewClient(path)
	t.Cleanup(c.Close)
	return c, path
}

// shortTempDir is a temp dir short enough for <dir>/run/realize.sock to be
// a valid socket path (t.TempDir can be long under some TMPDIRs).
func shortTempDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "rz")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestSocketPermissions(t *testing.T) {
	_, path := serve(t, &fakeBackend{})
	for p, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
	if filepath.Base(path) != "realize.sock" || filepath.Base(filepath.Dir(path)) != "run" {
		t.Errorf("socket at %s, want <data>/run/realize.sock", path)
	}
}

func TestSocketPathFallback(t *testing.T) {
	short := "/home/u/.local/share/realize"
	if got := SocketPath(short); got != short+"/run/realize.sock" {
		t.Errorf("SocketPath(%q) = %q", short, got)
	}
	long := "/" + strings.Repeat("very-long-directory-name/", 5) + "data"
	a, b := SocketPath(long), SocketPath(long)
	if a != b {
		t.Errorf("fallback not stable: %q vs %q", a, b)
	}
	if len(a) > maxSocketPath || !strings.HasPrefix(a, os.TempDir()) || !strings.HasSuffix(a, ".sock") {
		t.Errorf("fallback %q is not a short path under %s", a, os.TempDir())
	}
	if other := SocketPath(long + "2"); other == a {
		t.Errorf("two data dirs share the fallback socket %q", a)
	}
	if len(filepath.Base(a)) != 16+len(".sock") {
		t.Errorf("fallback name %q: want 16 hex digits", filepath.Base(a))
	}
}

func TestFallbackSocketWorks(t *testing.T) {
	data := filepath.Join(t.TempDir(), strings.Repeat("d", 100))
	path := SocketPath(data)
	if strings.HasPrefix(path, data) {
		t.Fatalf("expected a fallback path, got %q", path)
	}
	t.Cleanup(func() { os.Remove(path) })
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fi, err := os.Stat(filepath.Dir(path))
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("fallback dir: %v %v, want mode 0700", fi, err)
	}
}

func TestDaemonDown(t *testing.T) {
	data := shortTempDir(t)
	path := SocketPath(data)
	c := NewClient(path)
	_, err := c.Status(t.Context())
	if realize.KindOf(err) != realize.Unavailable || !strings.Contains(err.Error(), "the realize daemon is not running (no socket at "+path+")") {
		t.Fatalf("no socket: got %v (kind %v)", err, realize.KindOf(err))
	}
	// A socket file left by a killed daemon: nothing listens.
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("stale socket not left behind: %v", err)
	}
	err = c.Log(t.Context(), LogQuery{}, func(*LogRecord) error { return nil })
	if realize.KindOf(err) != realize.Unavailable || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("stale socket: got %v (kind %v)", err, realize.KindOf(err))
	}
	// The stale socket does not stop a new server.
	ln, err = Listen(path)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	ln.Close()
}

func TestStatusAndErrors(t *testing.T) {
	b := &fakeBackend{}
	c, _ := serve(t, b)
	rep, err := c.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Daemon.Running || rep.Daemon.PID != 42 || len(rep.Arenas) != 1 || rep.Arenas[0].Files != 3 {
		t.Errorf("status: %+v", rep)
	}
	cs, err := c.Conflicts(t.Context(), "docs")
	if err != nil || len(cs) != 1 || cs[0].Path != "a.txt" || *cs[0].Size != 3 || !cs[0].Local {
		t.Errorf("conflicts: %+v, %v", cs, err)
	}
	rr, err := c.Resolve(t.Context(), ResolveRequest{Path: "docs:a.txt", Keep: "1a2b"})
	if err != nil || rr.Path != "a.txt" || rr.Kept.Version != "1a2b" || len(rr.Dropped) != 1 {
		t.Errorf("resolve: %+v, %v", rr, err)
	}
	peer := realize.PeerID{1, 2, 3}
	b.err = &realize.Error{Op: "verify log", Kind: realize.Busy, Arena: "docs", Path: "a/b", Peer: peer, Err: errors.New("locked")}
	_, err = c.Verify(t.Context(), LogQuery{})
	var re *realize.Error
	if !errors.As(err, &re) || re.Kind != realize.Busy || re.Error() != b.err.Error() {
		t.Errorf("error did not round trip: got %v, want %v", err, b.err)
	}
	b.err = errors.New("plain")
	_, err = c.Status(t.Context())
	if err == nil || !strings.Contains(err.Error(), "plain") {
		t.Errorf("plain error: got %v", err)
	}
}

func records(n int) []LogRecord {
	var out []LogRecord
	size := int64(5)
	h := realize.Hash{9}
	for i := range n {
		out = append(out, LogRecord{Seq: uint64(i + 1), Arena: "docs", Op: "add", Path: realize.Path(fmt.Sprintf("f%d\nx", i)),
			Hash: &h, Size: &size, Time: time.Unix(int64(i), 0).UTC()})
	}
	return out
}

func TestLogStream(t *testing.T) {
	tests := []struct {
		name    string
		n       int
		failAt  int
		query   LogQuery
		want    int
		wantErr string
	}{
		{"all", 1000, -1, LogQuery{}, 1000, ""},
		{"filtered", 3, -1, LogQuery{Arena: "other"}, 0, ""},
		{"query passed", 3, -1, LogQuery{Arena: "docs", Peer: "nas", Since: time.Unix(5, 0).UTC(), Limit: 2}, 3, ""},
		{"error before first", 3, 0, LogQuery{}, 0, "read history docs: bad chain"},
		{"error mid-stream", 1000, 700, LogQuery{}, 700, "read history docs: bad chain"},
		{"error at end", 2, 2, LogQuery{}, 2, "at end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &fakeBackend{records: records(tt.n), failAt: tt.failAt}
			c, _ := serve(t, b)
			var got []*LogRecord
			err := c.Log(t.Context(), tt.query, func(r *LogRecord) error { got = append(got, r); return nil })
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if tt.wantErr != "" && realize.KindOf(err) != realize.Corrupt {
				t.Errorf("kind %v, want Corrupt", realize.KindOf(err))
			}
			if len(got) != tt.want {
				t.Fatalf("got %d records, want %d", len(got), tt.want)
			}
			if len(got) > 0 && (got[0].Path != b.records[0].Path || *got[0].Hash != *b.records[0].Hash || *got[0].Size != 5) {
				t.Errorf("record changed in transit: %+v", got[0])
			}
			if q := b.queries[0]; !q.Since.Equal(tt.query.Since) || q.Arena != tt.query.Arena || q.Peer != tt.query.Peer || q.Limit != tt.query.Limit {
				t.Errorf("query %+v reached the backend as %+v", tt.query, q)
			}
		})
	}
}

func TestLogEmitStops(t *testing.T) {
	c, _ := serve(t, &fakeBackend{records: records(10000), failAt: -1})
	stop := errors.New("enough")
	n := 0
	err := c.Log(t.Context(), LogQuery{}, func(*LogRecord) error {
		if n++; n == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 3 {
		t.Errorf("got %v after %d records, want the emit error after 3", err, n)
	}
}

func TestVersionMismatch(t *testing.T) {
	_, path := serve(t, &fakeBackend{})
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}}
	defer hc.CloseIdleConnections()
	for _, v := range []string{"", "999"} {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://realize/v1/status", nil)
		if v != "" {
			req.Header.Set(versionHeader, v)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotImplemented || !strings.Contains(string(body), "run the same version of realize") {
			t.Errorf("version %q: %s %s", v, resp.Status, body)
		}
	}
}

// TestClientChecksVersion: a daemon of another version is refused by the
// CLI too, with a message that says what to do.
func TestClientChecksVersion(t *testing.T) {
	path := SocketPath(shortTempDir(t))
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(versionHeader, "99")
		w.Write([]byte(`{}`))
	})}
	go srv.Serve(ln)
	defer srv.Close()
	c := NewClient(path)
	defer c.Close()
	_, err = c.Status(t.Context())
	if realize.KindOf(err) != realize.Unsupported || !strings.Contains(err.Error(), "run the same version of realize") {
		t.Errorf("got %v", err)
	}
}

func TestPinUnpinPathStatus(t *testing.T) {
	c, _ := serve(t, &fakeBackend{})
	var events []*PinEvent
	if err := c.Pin(t.Context(), PathRequest{Paths: []string{"docs:x"}}, func(e *PinEvent) error { events = append(events, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(events) != 3 || !events[2].Done || events[0].FilesDone != 1 || events[0].Path != "docs:x" {
		t.Fatalf("pin events: %+v", events)
	}
	rep, err := c.Unpin(t.Context(), PathRequest{Paths: []string{"a", "b"}})
	if err != nil || rep.Files != 2 || len(rep.Kept) != 1 || rep.Kept[0].Reason != "last copy" {
		t.Fatalf("unpin: %+v, %v", rep, err)
	}
	st, err := c.PathStatus(t.Context(), "docs:a.txt")
	if err != nil || st.Path != "docs:a.txt" || st.State != "real" {
		t.Fatalf("path status: %+v, %v", st, err)
	}
	bad, _ := serve(t, &fakeBackend{err: &realize.Error{Op: "pin", Kind: realize.NotExist, Path: "nope"}})
	err = bad.Pin(t.Context(), PathRequest{Paths: []string{"nope"}}, func(*PinEvent) error { return nil })
	if realize.KindOf(err) != realize.NotExist {
		t.Fatalf("pin error: %v", err)
	}
}
