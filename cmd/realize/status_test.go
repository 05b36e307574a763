package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/internal/config"
	"github.com/realizefs/realize/internal/control"
)

// fakeDaemon answers status on a config's control socket with a canned
// report (the real daemon's report is tested in internal/daemon).
type fakeDaemon struct {
	calls    atomic.Int64
	resolved chan control.ResolveRequest // Resolve sends what it was asked here
}

var errFake = errors.New("not in this fake")

func (f *fakeDaemon) Status(ctx context.Context) (*control.StatusReport, error) {
	n := f.calls.Add(1)
	started := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	nas := realize.PeerID{0xaa}
	blob := realize.Hash{0xbb}
	return &control.StatusReport{
		Daemon: control.DaemonStatus{Running: true, PID: 4242, Peer: realize.PeerID{1}, Name: "laptop", Version: "v1", Started: started, DataDir: "/data"},
		Arenas: []control.ArenaStatus{{Name: "docs", Dir: "/home/me/docs", Files: 10, UnrealFiles: 4, Bytes: 12345, HistorySeq: 7,
			Watching: true, ReceivedBytes: 2000, ReusedBytes: 10, RejectedBlocks: 1}},
		Peers: []control.PeerStatus{{Name: "nas", Peer: nas, Address: "nas.lan:7741", Connected: true, RemoteAddr: "10.0.0.2:7741",
			Since: started, Lag: 3, Behind: 2},
			{Name: "old", Peer: realize.PeerID{0xcc}, Heard: started.Add(-40 * 24 * time.Hour), Inactive: true}},
		Cache: &control.CacheStatus{Dir: "/data/cache", UsedBytes: 5000, LimitBytes: 1e9, FetchedBytes: 800, Hits: 9, Misses: 2},
		NFS:   "127.0.0.1:7742", Metrics: "127.0.0.1:7743",
		Transfers: []control.TransferStatus{
			{Kind: control.TransferPin, Arena: "docs", Path: "photos", Current: "photos/b.jpg", Files: 4, FilesDone: 1,
				Bytes: 4000, BytesDone: 1000 + 100*n, Rate: 100, Started: started, Peer: &nas, PeerName: "nas"},
			{Kind: control.TransferSync, Arena: "docs", Path: "notes/todo.txt", Bytes: 1000, BytesDone: 450, Rate: 1500, Started: started,
				Peer: &nas, PeerName: "nas"},
			{Kind: control.TransferRead, Arena: "docs", Blob: &blob, BytesDone: 64000, Rate: 32000, Started: started, Peer: &nas},
		},
	}, nil
}

func (f *fakeDaemon) Log(context.Context, control.LogQuery, func(*control.LogRecord) error) error {
	return errFake
}
func (f *fakeDaemon) Verify(context.Context, control.LogQuery) (*control.VerifyReport, error) {
	return nil, errFake
}
func (f *fakeDaemon) Conflicts(context.Context, realize.ArenaName) ([]control.ConflictRecord, error) {
	size := int64(2048)
	when := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return []control.ConflictRecord{
		{Arena: "home", Path: "doc.txt", Version: "aaaaaaaa-111111111111", Current: true, OriginName: "alpha", Kind: "file", Size: &size, MTime: when, Local: true},
		{Arena: "home", Path: "doc.txt", Version: "bbbbbbbb-222222222222", OriginName: "bravo", Kind: "file", Size: &size, MTime: when},
	}, nil
}
func (f *fakeDaemon) Resolve(_ context.Context, req control.ResolveRequest) (*control.ResolveReport, error) {
	if f.resolved != nil {
		f.resolved <- req
	}
	if req.Keep == "nope" {
		return nil, &realize.Error{Op: "resolve", Kind: realize.NotExist, Arena: "home", Path: "doc.txt", Err: errors.New(`no version "nope"`)}
	}
	return &control.ResolveReport{Arena: "home", Path: "doc.txt", Kept: control.ConflictRecord{Version: "aaaaaaaa-111111111111", OriginName: "alpha", Kind: "file"},
		Dropped: []control.ConflictRecord{{Version: "bbbbbbbb-222222222222", OriginName: "bravo", Kind: "file"}}}, nil
}
func (f *fakeDaemon) Pin(context.Context, control.PathRequest, func(*control.PinEvent) error) error {
	return errFake
}
func (f *fakeDaemon) Unpin(context.Context, control.PathRequest) (*control.UnpinReport, error) {
	return nil, errFake
}

// PathStatus answers for a few canned paths of arena "home" (see
// TestStatusPathText); any other is not there.
func (f *fakeDaemon) PathStatus(_ context.Context, ref string) (*control.PathStatus, error) {
	docs, photos := realize.Path("docs"), realize.Path("photos")
	blob := realize.Hash{0xbb, 0x01}
	when := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	nas, old := control.PeerRef{Peer: realize.PeerID{0xaa}, Name: "nas"}, control.PeerRef{Peer: realize.PeerID{0xcc, 0xdd}}
	switch ref {
	case "home:photos/a.jpg": // a quarter cached, unpinned by default, two holders (one no longer named in the config)
		return &control.PathStatus{Arena: "home", Path: "photos/a.jpg", Kind: "file", Mark: "unpinned", State: "cached",
			CachedBytes: 1_000_000, Size: 4_000_000, Hash: &blob, MTime: when, Holders: []control.PeerRef{nas, old}}, nil
	case "home:docs/report.txt": // real here, pinned through its directory
		return &control.PathStatus{Arena: "home", Path: "docs/report.txt", Kind: "file", Mark: "pinned", MarkFrom: &docs,
			State: "real", Size: 2048, Hash: &blob, MTime: when, Holders: []control.PeerRef{{Peer: realize.PeerID{1}, Name: "laptop"}, nas}}, nil
	case "home:photos/far.bin": // nothing here, no holder known; unpinned where it is
		far := realize.Path("photos/far.bin")
		return &control.PathStatus{Arena: "home", Path: far, Kind: "file", Mark: "unpinned", MarkFrom: &far, State: "remote",
			Size: 5, Hash: &blob}, nil
	case "home:photos":
		return &control.PathStatus{Arena: "home", Path: photos, Kind: "dir", Mark: "pinned", MarkFrom: &photos, RealFiles: 3, UnrealFiles: 12}, nil
	}
	return nil, &realize.Error{Op: "status", Kind: realize.NotExist, Arena: "home", Path: ref, Err: errors.New("no such path")}
}

// serveFake serves a fakeDaemon on the control socket of the config at
// cfgPath, until the test ends.
func serveFake(t *testing.T, cfgPath string) *fakeDaemon {
	t.Helper()
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := control.Listen(control.SocketPath(cfg.Data))
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeDaemon{}
	srv := control.NewServer(f, slog.New(slog.NewTextHandler(io.Discard, nil)))
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return f
}

// runCLIFor runs the CLI in-process until it returns or d passes (then
// its context is canceled, as Ctrl-C would).
func runCLIFor(t *testing.T, d time.Duration, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	var out, errb bytes.Buffer
	e := testEnv(t, &out, &errb, func(string) string { return "" })
	e.now = func() time.Time { return time.Date(2026, 1, 2, 3, 5, 5, 0, time.UTC) }
	code := run(ctx, e, append([]string{"realize"}, args...))
	return out.String(), errb.String(), code
}

// The JSON form is a contract: scripts read these field names.
func TestStatusJSONFields(t *testing.T) {
	_, cfg := initPeer(t)
	serveFake(t, cfg)
	out, errs, code := runCLI(t, nil, "--config", cfg, "status", "--json")
	if code != 0 || strings.Count(out, "\n") != 1 {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
	var rep map[string]any
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	has := func(obj any, where string, keys ...string) map[string]any {
		t.Helper()
		m, ok := obj.(map[string]any)
		if !ok {
			t.Fatalf("%s is not an object: %v", where, obj)
		}
		for _, k := range keys {
			if _, ok := m[k]; !ok {
				t.Errorf("%s lacks %q: %v", where, k, m)
			}
		}
		return m
	}
	first := func(key string) any {
		t.Helper()
		a, ok := rep[key].([]any)
		if !ok || len(a) == 0 {
			t.Fatalf("%s: want a non-empty array, got %v", key, rep[key])
		}
		return a[0]
	}
	has(rep, "status", "daemon", "arenas", "peers", "cache", "nfs", "transfers", "metrics")
	has(rep["daemon"], "daemon", "running", "pid", "peer", "name", "version", "started", "data_dir")
	has(first("arenas"), "arenas[0]", "name", "dir", "files", "dirs", "symlinks", "bytes", "unreal_files", "pinned",
		"pending_hash", "pending_bytes", "scanning", "history_seq", "watching", "received_bytes", "reused_bytes", "rejected_blocks")
	has(first("peers"), "peers[0]", "name", "peer", "address", "connected", "remote_addr", "since", "lag", "behind", "inactive")
	if old := rep["peers"].([]any)[1].(map[string]any); old["inactive"] != true || old["heard"] == nil {
		t.Errorf("inactive peer: %v", old)
	}
	has(rep["cache"], "cache", "dir", "used_bytes", "limit_bytes", "fetched_bytes", "hits", "misses", "evicted_bytes", "rejected_blocks")
	xs := rep["transfers"].([]any)
	if len(xs) != 3 {
		t.Fatalf("transfers %v", xs)
	}
	pin := has(xs[0], "transfers[0]", "kind", "arena", "path", "current", "peer", "peer_name", "bytes", "bytes_done",
		"files", "files_done", "rate", "started")
	sync := has(xs[1], "transfers[1]", "kind", "arena", "path", "peer", "peer_name", "bytes", "bytes_done", "rate", "started")
	read := has(xs[2], "transfers[2]", "kind", "arena", "path", "blob", "peer", "bytes", "bytes_done", "rate", "started")
	if pin["kind"] != "pin" || sync["kind"] != "sync" || read["kind"] != "read" || sync["bytes_done"] != 450.0 ||
		sync["path"] != "notes/todo.txt" || sync["peer"] != (realize.PeerID{0xaa}).String() {
		t.Errorf("transfer values: %v", xs)
	}
}

func TestStatusTextShowsTransfers(t *testing.T) {
	_, cfg := initPeer(t)
	serveFake(t, cfg)
	out, errs, code := runCLI(t, nil, "--config", cfg, "status")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	for _, want := range []string{
		"transfers\n",
		"  pin   docs:photos  1/4 files\n    [######..................]  27%  1.1 kB of 4.0 kB  100 B/s  from nas  now photos/b.jpg\n",
		"  sync  docs:notes/todo.txt\n    [##########..............]  45%  450 B of 1.0 kB  1.5 kB/s  from nas\n",
		"  read  docs: content bb0000000000\n    64.0 kB  32.0 kB/s  from aa000000\n",
		"metrics  serving on http://127.0.0.1:7743/metrics\n",
		"not connected, last heard from ",
		"; inactive: no longer holds back history trimming\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}

func TestStatusWatch(t *testing.T) {
	_, cfg := initPeer(t)
	f := serveFake(t, cfg)
	// --json: one object per line per second, until interrupted (exit 0).
	out, errs, code := runCLIFor(t, 2500*time.Millisecond, "--config", cfg, "status", "--watch", "--json")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != 0 || len(lines) < 2 || len(lines) > 4 {
		t.Fatalf("exit %d, %d lines, stderr %q:\n%s", code, len(lines), errs, out)
	}
	var prev int64
	for i, l := range lines {
		var rep control.StatusReport
		if err := json.Unmarshal([]byte(l), &rep); err != nil || !rep.Daemon.Running || len(rep.Transfers) != 3 {
			t.Fatalf("line %d: %v %q", i, err, l)
		}
		if done := rep.Transfers[0].BytesDone; done <= prev {
			t.Errorf("line %d: the pin did not move (%d after %d)", i, done, prev)
		} else {
			prev = done
		}
	}
	// Text: a frame per second (not a terminal: frames one after another).
	before := f.calls.Load()
	out, _, code = runCLIFor(t, 1500*time.Millisecond, "--config", cfg, "status", "-w")
	if code != 0 || strings.Count(out, "\ntransfers\n") < 2 || f.calls.Load()-before < 2 || strings.Contains(out, "\x1b[") {
		t.Errorf("text watch: exit %d, %d status calls:\n%s", code, f.calls.Load()-before, out)
	}
	if _, errs, code := runCLI(t, nil, "--config", cfg, "status", "--watch", "docs:x"); code != exitUsage {
		t.Errorf("--watch with a PATH: exit %d, %q", code, errs)
	}
}

// TestStatusPathText: `realize status PATH` shows the mark and where it
// comes from, the state here (cached with its share), size and hash, and
// who holds the file, by name or by short key.
func TestStatusPathText(t *testing.T) {
	_, cfg := initPeer(t)
	serveFake(t, cfg)
	hash := (realize.Hash{0xbb, 0x01}).String()
	mtime := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Local().Format(time.DateTime)
	for _, tc := range []struct {
		ref, want string
	}{
		{"home:photos/a.jpg", "home:photos/a.jpg  file\n" +
			"  mark     unpinned (the arena's default)\n" +
			"  state    cached 25%\n" +
			"  size     4.0 MB  " + hash + "\n" +
			"  mtime    " + mtime + "\n" +
			"  held by  nas, " + (realize.PeerID{0xcc, 0xdd}).Short() + "\n"},
		{"home:docs/report.txt", "home:docs/report.txt  file\n" +
			"  mark     pinned (set on docs)\n" +
			"  state    real\n" +
			"  size     2.0 kB  " + hash + "\n" +
			"  mtime    " + mtime + "\n" +
			"  held by  laptop, nas\n"},
		{"home:photos/far.bin", "home:photos/far.bin  file\n" +
			"  mark     unpinned (set here)\n" +
			"  state    remote\n" +
			"  size     5 B  " + hash + "\n" +
			"  held by  no peer known\n"},
		{"home:photos/", "home:photos  dir\n" +
			"  mark     pinned (set here)\n" +
			"  files    3 real, 12 unreal\n"},
	} {
		out, errs, code := runCLI(t, nil, "--config", cfg, "status", tc.ref)
		if code != 0 || errs != "" || out != tc.want {
			t.Errorf("status %s: exit %d, stderr %q, stdout\n%s\nwant\n%s", tc.ref, code, errs, out, tc.want)
		}
	}
	// A path the daemon does not know: one line, exit 1.
	out, errs, code := runCLI(t, nil, "--config", cfg, "status", "home:nothing.txt")
	if code != 1 || out != "" || !strings.Contains(errs, "no such path") || strings.Count(errs, "\n") != 1 {
		t.Errorf("unknown path: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}
