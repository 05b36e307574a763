package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/consensus"
	"github.com/realizefs/realize/real"
)

// conflictOf3 makes a three-way conflict on doc.txt: each of three peers
// edits it alone, then they meet. It returns the contents by peer.
func conflictOf3(t *testing.T, h *Household) []string {
	t.Helper()
	write(t, h.Peers[0], "doc.txt", "base")
	converge(t, h)
	h.Partition([]int{0}, []int{1}, []int{2})
	var contents []string
	for i, p := range h.Peers {
		c := fmt.Sprintf("version of peer %d", i)
		write(t, p, "doc.txt", c)
		contents = append(contents, c)
	}
	if err := h.Converge(t.Context(), 20); err != nil {
		t.Fatal(err)
	}
	h.Heal()
	converge(t, h)
	for _, p := range h.Peers {
		if cs := listed(t, p, "doc.txt"); len(cs) != 2 {
			t.Fatalf("peer %d lists %d versions of doc.txt, want 2", p.Index, len(cs))
		}
	}
	return contents
}

// listed returns the versions p keeps aside for path.
func listed(t *testing.T, p *Peer, path realize.Path) []realize.Alternative {
	t.Helper()
	cs, err := p.Arena.ConflictsAt(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []realize.Alternative
	for _, c := range cs {
		out = append(out, c.Alternative)
	}
	return out
}

// byContent returns the listed version of path on p holding content.
func byContent(t *testing.T, p *Peer, path realize.Path, content string) *realize.Alternative {
	t.Helper()
	for _, a := range listed(t, p, path) {
		if a.Meta.Blob.Short() == hashShort(content) {
			return &a
		}
	}
	t.Fatalf("peer %d keeps no version %q of %s aside", p.Index, content, path)
	return nil
}

func read(t *testing.T, p *Peer, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(p.Root, rel))
	if err != nil {
		t.Fatalf("peer %d: %v", p.Index, err)
	}
	return string(b)
}

// settled checks that no peer lists a conflict, keeps loser bytes aside,
// or has an index that disagrees with its own history.
func settled(t *testing.T, h *Household) {
	t.Helper()
	for _, p := range h.Peers {
		if cs, err := Conflicts(p); err != nil || len(cs) > 0 {
			t.Errorf("peer %d still lists conflicts %v %v", p.Index, cs, err)
		}
		if ents, _ := os.ReadDir(filepath.Join(p.Root, real.ConflictDir)); len(ents) > 0 {
			t.Errorf("peer %d still keeps %d loser files aside", p.Index, len(ents))
		}
		if err := real.CheckAgainstHistory(p.DB, Arena, p.Log, p.ID); err != nil {
			t.Errorf("peer %d: %v", p.Index, err)
		}
	}
}

// TestResolveKeepsChoiceEverywhere: one peer resolves, every peer ends
// with the version kept, nothing listed and no loser bytes kept.
func TestResolveKeepsChoiceEverywhere(t *testing.T) {
	for _, keep := range []string{"shown", "loser"} {
		t.Run(keep, func(t *testing.T) {
			h := New(t, 3)
			conflictOf3(t, h)
			c := h.Peers[2]
			var want string
			r := consensus.Resolution{}
			if keep == "loser" {
				r.Keep = &listed(t, c, "doc.txt")[0]
				want = hashShort("")
				for i := range 3 {
					if hashShort(fmt.Sprintf("version of peer %d", i)) == r.Keep.Meta.Blob.Short() {
						want = fmt.Sprintf("version of peer %d", i)
					}
				}
			} else {
				want = read(t, c, "doc.txt")
			}
			res, err := c.Resolve(t.Context(), "doc.txt", r)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Dropped) != 2 {
				t.Errorf("dropped %d versions, want 2", len(res.Dropped))
			}
			converge(t, h)
			for _, p := range h.Peers {
				if got := read(t, p, "doc.txt"); got != want {
					t.Errorf("peer %d holds %q, want %q", p.Index, got, want)
				}
			}
			settled(t, h)
		})
	}
}

// TestConcurrentResolutionsConverge: under a partition, two peers resolve
// the same three-way conflict keeping different versions. After the heal
// every peer holds one of the two choices, no conflict is listed (the two
// resolutions are one version, not a new conflict), and no loser bytes
// are kept.
func TestConcurrentResolutionsConverge(t *testing.T) {
	h := New(t, 3)
	conflictOf3(t, h)
	a, b := h.Peers[0], h.Peers[1]
	h.Partition([]int{0}, []int{1, 2})
	// Peer 2's version is shown (the latest mtime); each of the others
	// keeps its own, whose bytes it holds.
	ka, kb := byContent(t, a, "doc.txt", "version of peer 0"), byContent(t, b, "doc.txt", "version of peer 1")
	if _, err := a.Resolve(t.Context(), "doc.txt", consensus.Resolution{Keep: ka}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Resolve(t.Context(), "doc.txt", consensus.Resolution{Keep: kb}); err != nil {
		t.Fatal(err)
	}
	if err := h.Converge(t.Context(), 20); err != nil {
		t.Fatal(err)
	}
	h.Heal()
	converge(t, h)
	got := read(t, a, "doc.txt")
	if c := hashShort(got); c != ka.Meta.Blob.Short() && c != kb.Meta.Blob.Short() {
		t.Errorf("doc.txt holds %q, neither choice", got)
	}
	settled(t, h)
}

// TestResolveConcurrentWithCopies: one side keeps what the path shows,
// the other keeps every version as a copy; after the heal the copies are
// everywhere and nothing is listed.
func TestResolveConcurrentWithCopies(t *testing.T) {
	h := New(t, 3)
	contents := conflictOf3(t, h)
	a, b := h.Peers[0], h.Peers[1]
	shown := read(t, a, "doc.txt")
	h.Partition([]int{0}, []int{1, 2})
	if _, err := a.Resolve(t.Context(), "doc.txt", consensus.Resolution{}); err != nil {
		t.Fatal(err)
	}
	res, err := b.Resolve(t.Context(), "doc.txt", consensus.Resolution{Copies: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Copies) != 2 {
		t.Fatalf("copies %v", res.Copies)
	}
	if err := h.Converge(t.Context(), 20); err != nil {
		t.Fatal(err)
	}
	h.Heal()
	converge(t, h)
	tree, _ := TreeOf(a)
	var have []string
	for _, c := range contents {
		for p, desc := range tree {
			if desc == "file "+hashShort(c) {
				have = append(have, c)
				if c != shown && !strings.Contains(p, "(conflict ") {
					t.Errorf("%s holds a loser's content", p)
				}
			}
		}
	}
	slices.Sort(have)
	if !slices.Equal(have, contents) {
		t.Errorf("contents kept: %q, want all of %q\ntree: %v", have, contents, tree)
	}
	if read(t, h.Peers[2], "doc.txt") != shown {
		t.Errorf("doc.txt changed")
	}
	settled(t, h)
}

// TestResolveAndConcurrentEdit: an edit made elsewhere while a person
// resolves is new content: it is not lost (at the path or kept aside).
func TestResolveAndConcurrentEdit(t *testing.T) {
	for _, keep := range []string{"shown", "loser"} {
		t.Run(keep, func(t *testing.T) {
			h := New(t, 3)
			conflictOf3(t, h)
			a, b := h.Peers[0], h.Peers[1]
			h.Partition([]int{0}, []int{1, 2})
			r := consensus.Resolution{}
			if keep == "loser" {
				r.Keep = byContent(t, a, "doc.txt", "version of peer 0")
			}
			if _, err := a.Resolve(t.Context(), "doc.txt", r); err != nil {
				t.Fatal(err)
			}
			write(t, b, "doc.txt", "edited during the resolution")
			if err := h.Converge(t.Context(), 20); err != nil {
				t.Fatal(err)
			}
			h.Heal()
			converge(t, h)
			edit := hashShort("edited during the resolution")
			for _, p := range h.Peers {
				at := hashShort(read(t, p, "doc.txt")) == edit
				kept := false
				for _, l := range listed(t, p, "doc.txt") {
					kept = kept || l.Meta.Blob.Short() == edit
				}
				if !at && !kept {
					t.Errorf("peer %d lost the concurrent edit", p.Index)
				}
				if n := len(listed(t, p, "doc.txt")); keep == "shown" && n != 0 {
					t.Errorf("peer %d lists %d versions: an edit on top of the shown version follows the resolution", p.Index, n)
				}
			}
		})
	}
}

// TestDropOneVersion: dropping one kept-aside version (a delete under
// conflicts/) leaves the other listed everywhere; dropping the last one
// clears the conflict.
func TestDropOneVersion(t *testing.T) {
	h := New(t, 3)
	conflictOf3(t, h)
	a := h.Peers[0]
	ls := listed(t, a, "doc.txt")
	shown := read(t, a, "doc.txt")
	if _, err := a.Resolve(t.Context(), "doc.txt", consensus.Resolution{Drop: ls[:1]}); err != nil {
		t.Fatal(err)
	}
	converge(t, h)
	for _, p := range h.Peers {
		if l := listed(t, p, "doc.txt"); len(l) != 1 || l[0].Meta.Blob != ls[1].Meta.Blob {
			t.Fatalf("peer %d lists %v, want only %s", p.Index, l, ls[1].Meta.Blob.Short())
		}
	}
	if _, err := h.Peers[1].Resolve(t.Context(), "doc.txt", consensus.Resolution{Drop: ls[1:]}); err != nil {
		t.Fatal(err)
	}
	converge(t, h)
	for _, p := range h.Peers {
		if got := read(t, p, "doc.txt"); got != shown {
			t.Errorf("peer %d holds %q, want %q", p.Index, got, shown)
		}
	}
	settled(t, h)
	if _, err := a.Resolve(t.Context(), "doc.txt", consensus.Resolution{}); realize.KindOf(err) != realize.NotExist {
		t.Errorf("resolving a path in no conflict: %v, want a NotExist error", err)
	}
}
