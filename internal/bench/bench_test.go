package bench

import (
	"bytes"
	"strings"
	"testing"
)

// TestRunSmall runs every benchmark at a tiny size, so `make bench` cannot
// rot unnoticed between the times someone runs it.
func TestRunSmall(t *testing.T) {
	var out bytes.Buffer
	rows, err := Run(t.Context(), Options{Dir: t.TempDir(), Runs: 1, IndexFiles: 200, IndexBytes: 4 << 20, RescanFiles: 500,
		SyncBytes: 8 << 20, SyncFiles: 200, SyncEdits: 3, HistoryChanges: 1000, Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) < 3 {
		t.Fatalf("rows = %v", rows)
	}
	for _, r := range rows {
		if r.Value <= 0 && !strings.Contains(r.Name, "heap") && !strings.Contains(r.Name, "kept after") && !strings.Contains(r.Name, "put off") {
			t.Errorf("%s: value %v", r.Name, r.Value)
		}
	}
	if !strings.Contains(out.String(), "no-change rescan") || !strings.Contains(out.String(), "A→B") || !strings.Contains(out.String(), "after trimming") {
		t.Errorf("table:\n%s", out.String())
	}
}

// TestMountStageSmall runs the mount stage (a user-mode Linux guest) at a
// tiny size; it skips where UML cannot run, as the stage does.
func TestMountStageSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a user-mode Linux guest")
	}
	var out bytes.Buffer
	rows, err := benchMount(t.Context(), Options{Dir: t.TempDir(), Runs: 1, MountBytes: 16 << 20, Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 && strings.Contains(out.String(), "skipped") {
		t.Skip(out.String())
	}
	if len(rows) != 6 {
		t.Fatalf("rows = %+v", rows)
	}
	for _, r := range rows {
		if r.Value <= 0 || !strings.Contains(r.Name, "16 MiB") {
			t.Errorf("%s: %v %s", r.Name, r.Value, r.Unit)
		}
	}
}

// TestScaleSmall runs the scale stage on a small tree: a new peer must
// list every file, and the wide directory must list in full over NFS.
func TestScaleSmall(t *testing.T) {
	var out bytes.Buffer
	rows, err := Run(t.Context(), Options{Dir: t.TempDir(), Runs: 1, ScaleFiles: 3000, Only: "scale", Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) < 10 {
		t.Fatalf("rows = %v", rows)
	}
	for _, r := range rows {
		if r.Value <= 0 && !strings.Contains(r.Name, "heap") {
			t.Errorf("%s: value %v", r.Name, r.Value)
		}
	}
	if !strings.Contains(out.String(), "READDIRPLUS of 300 unreal entries") {
		t.Errorf("table:\n%s", out.String())
	}
}
