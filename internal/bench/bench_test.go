package bench

import (
	"bytes"
	"strings"
	"testing"
)

// TestRunSmall runs every benchmark at a tiny size, so `make bench` cannot
// rot unnoticed between the times someone runs it (the mount and scale
// stages have their own tests below).
func TestRunSmall(t *testing.T) {
	var out bytes.Buffer
	rows, err := Run(t.Context(), Options{Dir: t.TempDir(), Runs: 1, IndexFiles: 200, IndexBytes: 4 << 20, RescanFiles: 500,
		SyncBytes: 8 << 20, SyncFiles: 200, SyncEdits: 3, NFSBytes: 4 << 20, HistoryChanges: 1000, Out: &out})
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
	for _, want := range []string{"no-change rescan", "A→B", "after trimming",
		"nfs: first byte of an uncached 4 MiB file", "nfs: sequential read, uncached 4 MiB", "nfs: sequential read, cached 4 MiB"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the table lacks %q:\n%s", want, out.String())
		}
	}
	nfsRows := 0
	for _, r := range rows {
		if strings.HasPrefix(r.Name, "nfs: ") {
			nfsRows++
		}
	}
	if nfsRows != 3 {
		t.Errorf("%d nfs rows, want 3 (the nfs stage ran?): %v", nfsRows, rows)
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
