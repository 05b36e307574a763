package control

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/realizefs/realize"
)

// Approve answers for "docs" only, and counts the calls that reach it.
func (f *fakeBackend) Approve(ctx context.Context, req ApproveRequest) (*ApproveReport, error) {
	f.queries = append(f.queries, LogQuery{Arena: req.Arena})
	if req.Arena != "docs" && req.Arena != "" {
		return nil, &realize.Error{Op: "approve", Kind: realize.NotExist, Arena: req.Arena, Err: errors.New("no deletions are held")}
	}
	return &ApproveReport{Approved: []ApprovedArena{{Arena: "docs", Files: 18, Dirs: 2, StillHeld: 1}}}, nil
}

func TestApproveRoundTrip(t *testing.T) {
	f := &fakeBackend{failAt: -1}
	c, _ := serve(t, f)
	tests := []struct {
		name  string
		arena realize.ArenaName
		want  *ApproveReport
		kind  realize.ErrKind
		calls int // calls that reached the backend
	}{
		{"one arena", "docs", &ApproveReport{Approved: []ApprovedArena{{Arena: "docs", Files: 18, Dirs: 2, StillHeld: 1}}}, 0, 1},
		{"every arena", "", &ApproveReport{Approved: []ApprovedArena{{Arena: "docs", Files: 18, Dirs: 2, StillHeld: 1}}}, 0, 1},
		{"nothing held", "music", nil, realize.NotExist, 1},
		{"not an arena name", "../x", nil, realize.Invalid, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(f.queries)
			got, err := c.Approve(t.Context(), ApproveRequest{Arena: tt.arena})
			if realize.KindOf(err) != tt.kind && !(tt.kind == 0 && err == nil) {
				t.Fatalf("err = %v, want kind %v", err, tt.kind)
			}
			if tt.want != nil && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if n := len(f.queries) - before; n != tt.calls {
				t.Errorf("%d calls reached the backend, want %d", n, tt.calls)
			}
		})
	}
}

// The JSON names of held deletions are a contract for scripts (add-only).
func TestHeldDeletionsJSON(t *testing.T) {
	a := ArenaStatus{Name: "docs", Held: &HeldDeletions{Since: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Reason: "share",
		Files: 18, Dirs: 1, Percent: 90, Sample: []realize.Path{"photos"}, Guard: 50}}
	b, _ := json.Marshal(a)
	for _, k := range []string{`"held":{`, `"since":"2026-01-02T03:04:05Z"`, `"reason":"share"`, `"files":18`, `"dirs":1`,
		`"percent":90`, `"sample":["photos"]`, `"guard_percent":50`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("%s lacks %s", b, k)
		}
	}
	b, _ = json.Marshal(ArenaStatus{Name: "docs"})
	if strings.Contains(string(b), `"held"`) {
		t.Errorf("no hold, yet %s", b)
	}
}
