package consensus

import (
	"math/rand/v2"
	"testing"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/real"
)

// TestKnownMeansUnchanged: whenever known lets an incoming version be
// dropped unapplied, Decide would not have changed the path; and it does
// drop what the frontier already has.
func TestKnownMeansUnchanged(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	peers := []realize.PeerID{pa, pb, pc}
	dropped := 0
	for i := 0; i < 5000; i++ {
		var versions []realize.Alternative
		for k := 0; k < 2+rng.IntN(5); k++ {
			var base realize.VersionVector
			if len(versions) > 0 && rng.IntN(3) > 0 {
				base = versions[rng.IntN(len(versions))].Version
			}
			p := peers[rng.IntN(3)]
			v := base.With(p, uint64(100+k))
			if rng.IntN(4) == 0 {
				versions = append(versions, deleted(p, v))
			} else {
				versions = append(versions, file(p, byte(rng.IntN(4)), int64(rng.IntN(3)), v))
			}
		}
		// The local record: what deciding all but the last version gives.
		var front []realize.Alternative
		var rec *real.Record
		for _, v := range versions[:len(versions)-1] {
			if d := Decide(front, one(v)); d.Changed {
				front = append([]realize.Alternative{{Origin: d.Result.Origin, Meta: d.Result.Meta, Version: d.Own}}, d.Others...)
				rec = &real.Record{Meta: d.Result.Meta, Version: d.Result.Version, Origin: d.Result.Origin,
					Deleted: d.Result.Meta.Kind == realize.KindNone, Others: d.Others}
				if d.Conflict() {
					rec.Own = d.Own
				}
			}
		}
		in := one(versions[rng.IntN(len(versions))]) // often one the record has
		if known(rec, in) {
			dropped++
			if d := Decide(rec.Frontier(), in); d.Changed {
				t.Fatalf("dropped %+v, but Decide changes %+v", in, rec)
			}
		}
	}
	if dropped == 0 {
		t.Fatal("known never dropped anything")
	}
}
