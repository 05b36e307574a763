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

func TestDecide(t *testing.T) {
	tests := []struct {
		name          string
		local, remote realize.Alternative
		action        Action
		winnerBlob    byte // Result's blob (0: a deletion)
		loser         bool
	}{
		{"same version", file(pa, 1, 5, vv(pa, 1)), file(pa, 1, 5, vv(pa, 1)), Ignore, 0, false},
		{"remote older", file(pa, 2, 5, vv(pa, 2)), file(pa, 1, 5, vv(pa, 1)), Ignore, 0, false},
		{"remote newer", file(pa, 1, 5, vv(pa, 1)), file(pb, 2, 6, vv(pa, 1, pb, 1)), Apply, 2, false},
		{"new path", realize.Alternative{}, file(pb, 2, 6, vv(pb, 1)), Apply, 2, false},
		{"remote deletion follows", file(pa, 1, 5, vv(pa, 1)), deleted(pb, vv(pa, 1, pb, 3)), Apply, 0, false},
		{"concurrent edits, later mtime wins", file(pa, 1, 9, vv(pa, 2)), file(pb, 2, 6, vv(pa, 1, pb, 1)), Resolve, 1, true},
		{"concurrent edits, mtime tie, larger peer wins", file(pa, 1, 7, vv(pa, 2)), file(pb, 2, 7, vv(pa, 1, pb, 1)), Resolve, 2, true},
		{"edit beats concurrent delete (local edit)", file(pa, 1, 1, vv(pa, 2)), deleted(pb, vv(pa, 1, pb, 1)), Resolve, 1, false},
		{"edit beats concurrent delete (remote edit)", deleted(pa, vv(pa, 2)), file(pb, 2, 1, vv(pa, 1, pb, 1)), Resolve, 2, false},
		{"same bytes concurrently", file(pa, 3, 9, vv(pa, 1)), file(pb, 3, 4, vv(pb, 1)), Resolve, 3, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(tc.local, tc.remote)
			if d.Action != tc.action {
				t.Fatalf("action = %v, want %v", d.Action, tc.action)
			}
			if d.Action == Ignore {
				return
			}
			if d.Result.Meta.Blob[0] != tc.winnerBlob {
				t.Errorf("result blob %d, want %d", d.Result.Meta.Blob[0], tc.winnerBlob)
			}
			if (d.Loser != nil) != tc.loser {
				t.Errorf("loser = %+v, want present=%v", d.Loser, tc.loser)
			}
			if d.Action == Resolve {
				for _, v := range []realize.VersionVector{tc.local.Version, tc.remote.Version} {
					if o := d.Result.Version.Compare(v); o != realize.After {
						t.Errorf("result version %v does not dominate %v (%v)", d.Result.Version, v, o)
					}
				}
			}
		})
	}
}

// TestDecideSymmetric: two peers that see the same concurrent versions in
// opposite roles reach the same result and keep the same loser.
func TestDecideSymmetric(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	peers := []realize.PeerID{pa, pb, pc}
	random := func() realize.Alternative {
		v := realize.VersionVector{}
		for _, p := range peers {
			if rng.IntN(2) == 0 {
				v[p] = uint64(rng.IntN(4))
			}
		}
		if rng.IntN(4) == 0 {
			return deleted(peers[rng.IntN(3)], v)
		}
		return file(peers[rng.IntN(3)], byte(rng.IntN(3)), int64(rng.IntN(3)), v)
	}
	for i := 0; i < 5000; i++ {
		x, y := random(), random()
		dx, dy := Decide(x, y), Decide(y, x)
		if x.Version.Compare(y.Version) != realize.Concurrent {
			continue
		}
		if dx.Result.Meta != dy.Result.Meta || dx.Result.Version.Compare(dy.Result.Version) != realize.Equal || dx.Result.Origin != dy.Result.Origin {
			t.Fatalf("asymmetric: %+v vs %+v -> %+v / %+v", x, y, dx.Result, dy.Result)
		}
		if (dx.Loser == nil) != (dy.Loser == nil) || dx.Loser != nil && dx.Loser.Meta != dy.Loser.Meta {
			t.Fatalf("different losers: %+v / %+v", dx.Loser, dy.Loser)
		}
	}
}

func vv(kv ...any) realize.VersionVector {
	v := realize.VersionVector{}
	for i := 0; i < len(kv); i += 2 {
		v[kv[i].(realize.PeerID)] = uint64(kv[i+1].(int))
	}
	return v
}
