package harness

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/realizefs/realize/consensus"
)

// TestRandomizedConvergence: seeded, bounded runs of random creates,
// edits, renames (within and across directories), deletes and empty
// directories on every peer, under random partitions that may last long
// enough (weeks of the harness clock) for the peers cut off to turn
// inactive, with every peer trimming its history all along. After each
// heal it asserts convergence (every peer holds the same tree and lists
// the same conflicts), zero loss (every version a side of the partition
// made is, after the heal, at its path on every peer or kept as a conflict
// loser) and no zombie (a file one side deleted and no other side touched
// does not come back). At the end, with every peer active and up to date,
// trimming leaves every log at its head and no tombstone.
func TestRandomizedConvergence(t *testing.T) {
	seeds := 12
	if testing.Short() {
		seeds = 3
	}
	var catchUps int64
	var trimmed consensus.TrimReport
	for seed := 1; seed <= seeds; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			h := randomRun(t, uint64(seed))
			for _, p := range h.Peers {
				catchUps += p.repl.CatchUps.Load()
			}
			trimmed.Entries += h.Trimmed.Entries
			trimmed.Tombstones += h.Trimmed.Tombstones
			trimmed.Inactive = append(trimmed.Inactive, h.Trimmed.Inactive...)
		})
	}
	t.Logf("%d catch-ups by snapshot; trimming dropped %d entries and %d tombstones, found peers inactive %d times",
		catchUps, trimmed.Entries, trimmed.Tombstones, len(trimmed.Inactive))
	if !t.Failed() && (catchUps == 0 || trimmed.Tombstones == 0 || len(trimmed.Inactive) == 0) {
		t.Error("catch-ups, dropped tombstones and inactive peers were not all exercised")
	}
}

// randomRun runs one seed; it returns the household for inspection.
func randomRun(t *testing.T, seed uint64) (h *Household) {
	rng := rand.New(rand.NewPCG(seed, 7))
	n := 3 + rng.IntN(2)
	h = New(t, n)
	const day = 24 * time.Hour
	for _, p := range h.Peers {
		p.Trimmer.InactiveAfter = 20 * day
		if seed%2 == 0 {
			p.Trimmer.AuditKeep = 10 * day // else 0: only the working log is kept
		}
		for d := 0; d < 3; d++ {
			os.MkdirAll(filepath.Join(p.Root, fmt.Sprint("d", d)), 0o755)
		}
	}
	converge(t, h)
	for phase := 0; phase < 5; phase++ {
		base, _ := TreeOf(h.Peers[0])
		baseRecs := records(t, h.Peers[0])
		sides := randomSides(rng, n)
		h.Partition(sides...)
		periods := 1 + rng.IntN(3) // a long partition: inactive peers
		for period := 0; period < periods; period++ {
			h.Clock.Advance(time.Duration(4+rng.IntN(9)) * day)
			for step := 0; step < 2; step++ {
				for k := 0; k < 6; k++ {
					randomOp(t, rng, h.Peers[rng.IntN(n)], phase, period*2+step, k)
				}
				if err := h.Converge(t.Context(), 30); err != nil {
					t.Fatalf("phase %d period %d step %d, within sides: %v", phase, period, step, err)
				}
				if err := h.Trim(t.Context()); err != nil {
					t.Fatal(err)
				}
			}
		}
		made := newVersions(t, h, sides, base)
		gone := deletedAlone(t, h, sides, baseRecs)
		h.Heal()
		if err := h.Converge(t.Context(), 30); err != nil {
			t.Error(err)
			return h
		}
		if err := h.Converged(); err != nil {
			t.Error(err)
			return h
		}
		checkNoLoss(t, h, made)
		checkNoZombie(t, h, gone)
		if err := h.Trim(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	checkTrimmed(t, h, seed%2 == 1)
	return h
}

// randomSides splits peers 0..n-1 into one to three groups.
func randomSides(rng *rand.Rand, n int) [][]int {
	k := 1 + rng.IntN(3)
	sides := make([][]int, k)
	for i := 0; i < n; i++ {
		s := rng.IntN(k)
		sides[s] = append(sides[s], i)
	}
	return sides
}

func randomOp(t *testing.T, rng *rand.Rand, p *Peer, epoch, step, k int) {
	file := func() string {
		return filepath.Join(p.Root, fmt.Sprint("d", rng.IntN(3)), fmt.Sprint("f", rng.IntN(6)))
	}
	content := fmt.Sprintf("peer %d epoch %d step %d op %d %d", p.Index, epoch, step, k, rng.IntN(1000))
	switch r := rng.IntN(10); {
	case r < 4: // create or edit
		os.WriteFile(file(), []byte(content), 0o644)
	case r < 6: // rename, maybe over an existing file
		os.Rename(file(), file())
	case r < 8:
		os.Remove(file())
	case r < 9: // an empty directory comes or goes
		d := filepath.Join(p.Root, fmt.Sprint("e", rng.IntN(2)))
		if err := os.Mkdir(d, 0o755); err != nil {
			os.Remove(d)
		}
	default: // exec bit
		os.Chmod(file(), 0o755)
	}
}

// version is one file content a side ended with.
type version struct{ path, desc string }

// newVersions lists, per side, the files whose content differs from base.
func newVersions(t *testing.T, h *Household, sides [][]int, base Tree) []version {
	t.Helper()
	var out []version
	for _, side := range sides {
		if len(side) == 0 {
			continue
		}
		tree, err := TreeOf(h.Peers[side[0]])
		if err != nil {
			t.Fatal(err)
		}
		for path, desc := range tree {
			if strings.HasPrefix(desc, "file ") && base[path] != desc {
				out = append(out, version{path, desc})
			}
		}
	}
	return out
}

// checkNoLoss: every side's new version is at its path or a recorded
// conflict loser (with the same content), and all peers list the same
// conflicts.
func checkNoLoss(t *testing.T, h *Household, made []version) {
	t.Helper()
	final, _ := TreeOf(h.Peers[0])
	conflicts, _ := Conflicts(h.Peers[0])
	for _, p := range h.Peers[1:] {
		c, _ := Conflicts(p)
		if strings.Join(c, ",") != strings.Join(conflicts, ",") {
			t.Fatalf("peer 0 lists conflicts %v, peer %d %v", conflicts, p.Index, c)
		}
	}
	kept := map[string]bool{}
	for _, c := range conflicts {
		kept[c] = true
	}
	var lost []string
	for _, v := range made {
		blob := strings.Fields(v.desc)[1]
		if sameFile(final[v.path], v.desc) || kept[v.path+" "+blob] {
			continue
		}
		lost = append(lost, fmt.Sprintf("%s (%s) -> now %q", v.path, v.desc, final[v.path]))
	}
	sort.Strings(lost)
	if len(lost) > 0 {
		t.Fatalf("versions lost:\n%s\nconflicts: %v", strings.Join(lost, "\n"), conflicts)
	}
}

// sameFile compares contents, ignoring the exec bit (a concurrent chmod
// and edit legitimately merge into one version).
func sameFile(a, b string) bool {
	return strings.Fields(a + " ?")[0:2][1] == strings.Fields(b + " ?")[0:2][1]
}
