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

	"github.com/realizefs/realize"
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
	randomRuns(t, 0, false)
}

// randomRuns runs the seeds from base+1 and checks that catch-ups,
// dropped tombstones and inactive peers were all exercised.
func randomRuns(t *testing.T, base uint64, resolves bool) {
	seeds := uint64(12)
	if testing.Short() {
		seeds = 3
	}
	var catchUps int64
	var trimmed consensus.TrimReport
	for seed := base + 1; seed <= base+seeds; seed++ {
		t.Run(fmt.Sprint("seed", seed-base), func(t *testing.T) {
			h := randomRun(t, seed, resolves)
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

// TestRandomizedResolutions: the same runs, trimming included, with
// people resolving conflicts at random meanwhile (keeping what is shown,
// another version, every version as copies, or dropping one), on several
// sides of a partition at once. Convergence must hold as before, and the
// only versions allowed to go are those a resolution dropped or replaced;
// at the end, once the rest is resolved, no peer lists anything or keeps
// loser bytes, and trimming leaves no tombstone.
func TestRandomizedResolutions(t *testing.T) {
	randomRuns(t, 100, true)
}

// randomRun runs one seed, with random resolutions if resolves; it
// returns the household for inspection.
func randomRun(t *testing.T, seed uint64, resolves bool) (h *Household) {
	rng := rand.New(rand.NewPCG(seed, 7))
	n := 3 + rng.IntN(2)
	h = New(t, n)
	// The delete guard counts the deletions of the last minute of wall
	// time, and these runs make dozens in much less: it would hold some,
	// depending on the machine's speed. Its own test is guard_test.go.
	h.DeleteGuard = 0
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
	resolved := map[string]bool{} // "path blob": versions resolutions let go
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
					if resolves && rng.IntN(4) == 0 {
						randomResolve(t, rng, h.Peers[rng.IntN(n)], resolved)
						continue
					}
					randomOp(t, rng, h.Peers[rng.IntN(n)], phase, period*2+step, k)
				}
				if err := h.Converge(t.Context(), 30); err != nil {
					t.Fatalf("phase %d period %d step %d, within sides: %v", phase, period, step, err)
				}
				trim(t, h)
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
		checkNoLoss(t, h, made, resolved)
		checkNoZombie(t, h, gone)
		trim(t, h)
	}
	if resolves {
		clearAll(t, h)
	}
	checkTrimmed(t, h, seed%2 == 1)
	return h
}

// trim trims every peer's history.
func trim(t *testing.T, h *Household) {
	t.Helper()
	if err := h.Trim(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// clearAll resolves every conflict left on the first peer, keeping what
// is shown, and checks that every peer then lists nothing and keeps no
// loser bytes.
func clearAll(t *testing.T, h *Household) {
	t.Helper()
	p := h.Peers[0]
	cs, err := p.Arena.Conflicts("")
	if err != nil {
		t.Fatal(err)
	}
	done := map[string]bool{}
	for _, c := range cs {
		if !done[string(c.Path)] {
			done[string(c.Path)] = true
			if _, err := p.Resolve(t.Context(), c.Path, consensus.Resolution{}); err != nil {
				t.Fatalf("resolve %s: %v", c.Path, err)
			}
		}
	}
	converge(t, h)
	settled(t, h)
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
// conflict loser (with the same content), unless a resolution let it go
// (gone), and all peers list the same conflicts.
func checkNoLoss(t *testing.T, h *Household, made []version, gone map[string]bool) {
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
		if sameFile(final[v.path], v.desc) || kept[v.path+" "+blob] || gone[v.path+" "+blob] {
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

// randomResolve resolves a random conflict p lists, in a random way, and
// notes in gone the versions the resolution let go. Resolutions that
// cannot be made now (the bytes of the version kept are on another side,
// an older version would go too) are skipped.
func randomResolve(t *testing.T, rng *rand.Rand, p *Peer, gone map[string]bool) {
	t.Helper()
	if err := p.Arena.ScanAll(t.Context()); err != nil {
		t.Fatal(err)
	}
	cs, err := p.Arena.Conflicts("")
	if err != nil || len(cs) == 0 {
		return
	}
	c := cs[rng.IntN(len(cs))]
	listed, _ := p.Arena.ConflictsAt(c.Path)
	var r consensus.Resolution
	switch rng.IntN(4) {
	case 0: // keep what is shown
	case 1:
		r.Keep = &listed[rng.IntN(len(listed))].Alternative
	case 2:
		r.Drop = []realize.Alternative{listed[rng.IntN(len(listed))].Alternative}
	default:
		r.Copies = true
	}
	tree, _ := TreeOf(p)
	res, err := p.Resolve(t.Context(), c.Path, r)
	switch realize.KindOf(err) {
	case realize.Other:
		if err != nil {
			t.Fatalf("resolve %s on peer %d: %v", c.Path, p.Index, err)
		}
	case realize.Unavailable, realize.Busy:
		return
	default:
		t.Fatalf("resolve %s on peer %d: %v", c.Path, p.Index, err)
	}
	t.Logf("resolved %s on peer %d: %+v kept %s dropped %d copies %d", c.Path, p.Index, r.Keep != nil, res.Kept.Meta.Blob.Short(), len(res.Dropped), len(res.Copies))
	for _, d := range res.Dropped {
		gone[string(c.Path)+" "+d.Meta.Blob.Short()] = true
	}
	if shown := strings.Fields(tree[string(c.Path)] + " ?"); r.Keep != nil && shown[0] == "file" {
		gone[string(c.Path)+" "+shown[1]] = true // replaced by the version kept
	}
}
