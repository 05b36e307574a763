package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/internal/config"
	"github.com/realizefs/realize/internal/control"
)

// Approve: the status fake holds nothing.
func (f *fakeDaemon) Approve(_ context.Context, req control.ApproveRequest) (*control.ApproveReport, error) {
	if req.Arena == "" {
		return nil, &realize.Error{Op: "approve", Kind: realize.NotExist, Err: errors.New("no deletions are held in any arena")}
	}
	return nil, &realize.Error{Op: "approve", Kind: realize.NotExist, Arena: req.Arena, Err: errors.New("no deletions are held")}
}

// holdingDaemon is a fake daemon whose arena "home" holds deletions.
type holdingDaemon struct {
	fakeDaemon
	approved []realize.ArenaName
}

var heldSince = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func (h *holdingDaemon) Status(ctx context.Context) (*control.StatusReport, error) {
	rep, _ := h.fakeDaemon.Status(ctx)
	rep.Arenas[0].Name = "home"
	rep.Arenas[0].Held = &control.HeldDeletions{Since: heldSince, Reason: "share", Files: 18, Dirs: 1, Percent: 90,
		Sample: []realize.Path{"d", "z.txt"}, Guard: 50}
	return rep, nil
}

func (h *holdingDaemon) Approve(_ context.Context, req control.ApproveRequest) (*control.ApproveReport, error) {
	h.approved = append(h.approved, req.Arena)
	if req.Reject {
		return &control.ApproveReport{Approved: []control.ApprovedArena{{Arena: "home", Restored: 18, StillHeld: 1,
			Kept: []control.PathFailure{{Arena: "home", Path: "d/only", Reason: "no other peer holds this version"}}}}}, nil
	}
	return &control.ApproveReport{Approved: []control.ApprovedArena{{Arena: "home", Files: 18, Dirs: 1, StillHeld: 2}}}, nil
}

// serveBackend serves b on the control socket of the config at cfgPath.
func serveBackend(t *testing.T, cfgPath string, b control.Backend) {
	t.Helper()
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := control.Listen(control.SocketPath(cfg.Data))
	if err != nil {
		t.Fatal(err)
	}
	srv := control.NewServer(b, slog.New(slog.NewTextHandler(io.Discard, nil)))
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
}

func TestApprove(t *testing.T) {
	_, cfg := initPeer(t)
	h := &holdingDaemon{}
	serveBackend(t, cfg, h)
	out, errs, code := runCLI(t, nil, "--config", cfg, "approve", "home")
	want := "home: recorded 19 deletions (18 files, 1 directory); the other peers delete them too\n" +
		"home: 2 deletions found since still held (see realize status; approve again to record them)\n"
	if code != 0 || out != want {
		t.Fatalf("exit %d, stderr %q, stdout:\n%s\nwant:\n%s", code, errs, out, want)
	}
	out, _, code = runCLI(t, nil, "--config", cfg, "--json", "approve")
	var rep control.ApproveReport
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || len(rep.Approved) != 1 || rep.Approved[0].StillHeld != 2 ||
		!strings.Contains(out, `"still_held":2`) {
		t.Fatalf("--json: exit %d, %q", code, out)
	}
	if len(h.approved) != 2 || h.approved[0] != "home" || h.approved[1] != "" {
		t.Errorf("requests: %q", h.approved)
	}
}

func TestApproveBadInput(t *testing.T) {
	_, cfg := initPeer(t)
	serveFake(t, cfg) // holds nothing
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"nothing held", []string{"approve"}, exitFailure, "realize: approve: no deletions are held in any arena\n"},
		{"nothing held in the arena", []string{"approve", "home"}, exitFailure, "realize: approve home: no deletions are held\n"},
		{"unknown arena", []string{"approve", "music"}, exitUsage, `no arena called "music"`},
		{"not an arena name", []string{"approve", "../x"}, exitUsage, `"../x" is not an arena name`},
		{"two arenas", []string{"approve", "home", "music"}, exitUsage, "at most one ARENA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errs, code := runCLI(t, nil, append([]string{"--config", cfg}, tt.args...)...)
			if code != tt.code || !strings.Contains(errs, tt.want) || out != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d and %q", code, out, errs, tt.code, tt.want)
			}
		})
	}
}

func TestStatusShowsHeld(t *testing.T) {
	_, cfg := initPeer(t)
	serveBackend(t, cfg, &holdingDaemon{})
	out, errs, code := runCLIFor(t, 10*time.Second, "--config", cfg, "status")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	for _, want := range []string{
		"  HELD     19 deletions (18 files, 1 directory; 90% of the files) since ",
		"(1m0s ago):\n           not recorded, not sent to other peers (they keep their copies)\n",
		"           because that is more than delete_guard (50%) of the arena's files\n",
		"           d\n           z.txt  …\n",
		"           to delete them everywhere: realize approve home\n",
		"           to undo: put the files back",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	out, _, _ = runCLI(t, nil, "--config", cfg, "status", "--json")
	for _, k := range []string{`"held":{`, `"reason":"share"`, `"files":18`, `"percent":90`, `"sample":["d","z.txt"]`, `"guard_percent":50`} {
		if !strings.Contains(out, k) {
			t.Errorf("status --json lacks %s: %s", k, out)
		}
	}
}

func TestApproveReject(t *testing.T) {
	_, cfg := initPeer(t)
	serveBackend(t, cfg, &holdingDaemon{})
	out, errs, code := runCLI(t, nil, "--config", cfg, "approve", "--reject", "home")
	want := "home: put back 18 paths, not deleted anywhere; files whose bytes are elsewhere are unreal here\n" +
		"  (read them through the mount, or fetch them with realize pin)\n" +
		"  still held: d/only: no other peer holds this version\n"
	if code != exitFailure || out != want || !strings.Contains(errs, `reject home: 1 deletion still held (d/only: no other peer`) {
		t.Fatalf("exit %d, stderr %q, stdout:\n%s\nwant:\n%s", code, errs, out, want)
	}
	out, _, code = runCLI(t, nil, "--config", cfg, "--json", "approve", "--reject")
	if code != exitFailure || !strings.Contains(out, `"restored":18`) || !strings.Contains(out, `"kept":[{"arena":"home","path":"d/only"`) {
		t.Fatalf("--json: exit %d, %q", code, out)
	}
}
