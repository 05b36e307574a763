package consensus

import (
	"math/rand/v2"
	"testing"

	"github.com/realizefs/realize"
)

var pa, pb, pc = realize.PeerID{0xa}, realize.PeerID{0xb}, realize.PeerID{0xc}

func file(origin realize.PeerID, blob byte, mtime int64, v realize.VersionVector) realize.Alternative {
	return realize.Alternative{Origin: origin, Meta: realize.Meta{Kind: realize.KindFile, Size: 1, MTime: mtime, Blob: realize.Hash{blob}}, Version: v}
}

func deleted(origin realize.PeerID, v realize.VersionVector) realize.Alternative {
	return realize.Alternative{Origin: origin, Version: v}
}

func one(a realize.Alternative) []realize.Alternative { return []realize.Alternative{a} }

func TestDecide(t *testing.T) {
	tests := []struct {
		name          string
		local, remote realize.Alternative
		changed       bool
		winnerBlob    byte // Result's blob (0: a deletion)
		losers        int
	}{
		{"same version", file(pa, 1, 5, vv(pa, 1)), file(pa, 1, 5, vv(pa, 1)), false, 0, 0},
		{"remote older", file(pa, 2, 5, vv(pa, 2)), file(pa, 1, 5, vv(pa, 1)), false, 0, 0},
		{"remote newer", file(pa, 1, 5, vv(pa, 1)), file(pb, 2, 6, vv(pa, 1, pb, 1)), true, 2, 0},
		{"new path", realize.Alternative{}, file(pb, 2, 6, vv(pb, 1)), true, 2, 0},
		{"remote deletion follows", file(pa, 1, 5, vv(pa, 1)), deleted(pb, vv(pa, 1, pb, 3)), true, 0, 0},
		{"concurrent edits, later mtime wins", file(pa, 1, 9, vv(pa, 2)), file(pb, 2, 6, vv(pa, 1, pb, 1)), true, 1, 1},
		{"concurrent edits, mtime tie, larger peer wins", file(pa, 1, 7, vv(pa, 2)), file(pb, 2, 7, vv(pa, 1, pb, 1)), true, 2, 1},
		{"edit beats concurrent delete (local edit)", file(pa, 1, 1, vv(pa, 2)), deleted(pb, vv(pa, 1, pb, 1)), true, 1, 0},
		{"edit beats concurrent delete (remote edit)", deleted(pa, vv(pa, 2)), file(pb, 2, 1, vv(pa, 1, pb, 1)), true, 2, 0},
		{"same bytes concurrently", file(pa, 3, 9, vv(pa, 1)), file(pb, 3, 4, vv(pb, 1)), true, 3, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var local []realize.Alternative
			if tc.local.Version != nil {
				local = one(tc.local)
			}
			d := Decide(local, one(tc.remote))
			if d.Changed != tc.changed {
				t.Fatalf("changed = %v, want %v", d.Changed, tc.changed)
			}
			if !d.Changed {
				return
			}
			if d.Result.Meta.Blob[0] != tc.winnerBlob {
				t.Errorf("result blob %d, want %d", d.Result.Meta.Blob[0], tc.winnerBlob)
			}
			if n := len(d.Losers()); n != tc.losers {
				t.Errorf("losers = %+v, want %d", d.Losers(), tc.losers)
			}
			for _, v := range []realize.VersionVector{tc.local.Version, tc.remote.Version} {
				if o := d.Result.Version.Compare(v); o != realize.After && o != realize.Equal {
					t.Errorf("result version %v does not include %v (%v)", d.Result.Version, v, o)
				}
			}
		})
	}
}

// TestDecideOrderIndependent: peers that learn the same versions of a path
// in different orders (each time feeding their current frontier and one new
// version) end with the same frontier, winner and merged version. Pairwise
// resolution in arrival order fails this (a version superseded after it
// won a conflict would stay).
func TestDecideOrderIndependent(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	peers := []realize.PeerID{pa, pb, pc}
	for i := 0; i < 3000; i++ {
		// A small random causal history: each version extends a random
		// earlier one (or nothing) with a fresh dot.
		var versions []realize.Alternative
		for k := 0; k < 2+rng.IntN(5); k++ {
			var base realize.VersionVector
			if len(versions) > 0 && rng.IntN(3) > 0 {
				base = versions[rng.IntN(len(versions))].Version
			}
			p := peers[rng.IntN(3)]
			v := base.With(p, uint64(100+k))
			if len(versions) > 0 && rng.IntN(5) == 0 {
				// A resolution keeping some content: its vector is a
				// function of what it saw, so two of them collide.
				v = resolutionOf(versions[:1+rng.IntN(len(versions))])
			}
			if rng.IntN(4) == 0 {
				versions = append(versions, deleted(p, v))
			} else {
				versions = append(versions, file(p, byte(rng.IntN(4)), int64(rng.IntN(3)), v))
			}
		}
		var ref Decision
		for order := 0; order < 4; order++ {
			perm := rng.Perm(len(versions))
			var front []realize.Alternative
			var last Decision
			for _, j := range perm {
				d := Decide(front, one(versions[j]))
				if d.Changed {
					front = append([]realize.Alternative{{Origin: d.Result.Origin, Meta: d.Result.Meta, Version: d.Own}}, d.Others...)
					last = d
				}
			}
			if order == 0 {
				ref = last
				continue
			}
			if last.Result.Meta != ref.Result.Meta || last.Result.Version.Compare(ref.Result.Version) != realize.Equal || len(last.Others) != len(ref.Others) {
				t.Fatalf("history %d: order %v gives %+v (%d others), first order %+v (%d others)", i, perm, last.Result, len(last.Others), ref.Result, len(ref.Others))
			}
		}
	}
}

// resolutionOf is the vector of a resolution keeping another version
// than the one shown, having seen versions.
func resolutionOf(versions []realize.Alternative) realize.VersionVector {
	var v realize.VersionVector
	for _, a := range versions {
		v = v.Merge(a.Version)
	}
	rc := realize.ResolveCounter()
	return v.With(rc, v[rc]+1)
}

// TestDecideConcurrentResolutions: two resolutions of the same state
// keeping different contents have one vector: whatever the order they
// meet in, the same one stays and there is no conflict.
func TestDecideConcurrentResolutions(t *testing.T) {
	w, l1, l2 := file(pa, 1, 9, vv(pa, 1)), file(pb, 2, 7, vv(pb, 1)), file(pc, 3, 8, vv(pc, 1))
	seen := []realize.Alternative{w, l1, l2}
	r1, r2 := l1, l2
	r1.Version, r2.Version = resolutionOf(seen), resolutionOf(seen)
	want := r2 // the later mtime
	for _, order := range [][2]realize.Alternative{{r1, r2}, {r2, r1}} {
		local := Decide([]realize.Alternative{w, l1, l2}, one(order[0]))
		if !local.Changed || local.Conflict() || local.Result.Meta != order[0].Meta {
			t.Fatalf("first resolution: %+v", local)
		}
		d := Decide(one(local.Result), one(order[1]))
		got := local.Result
		if d.Changed {
			got = d.Result
		}
		if d.Conflict() || got.Meta != want.Meta || got.Version.Compare(want.Version) != realize.Equal {
			t.Errorf("order %v: %+v, want %+v and no conflict", order[0].Meta.Blob[0], d, want)
		}
	}
	// A later edit on top of either one follows it.
	edit := file(pa, 4, 1, r1.Version.With(pa, 7))
	if d := Decide(one(r2), one(edit)); !d.Changed || d.Conflict() || d.Result.Meta != edit.Meta {
		t.Errorf("edit after a resolution: %+v", d)
	}
}

func vv(kv ...any) realize.VersionVector {
	v := realize.VersionVector{}
	for i := 0; i < len(kv); i += 2 {
		v[kv[i].(realize.PeerID)] = uint64(kv[i+1].(int))
	}
	return v
}
