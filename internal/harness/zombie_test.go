package harness

import (
	"testing"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/real"
	bolt "go.etcd.io/bbolt"
)

// records returns a peer's index records of files, tombstones included.
func records(t *testing.T, p *Peer) map[realize.Path]*real.Record {
	t.Helper()
	out := map[realize.Path]*real.Record{}
	err := p.DB.View(func(tx *bolt.Tx) error {
		ix, err := real.OpenIndex(tx, Arena)
		if err != nil {
			return err
		}
		return ix.Walk("", func(path realize.Path, r *real.Record) error {
			if r.Deleted || r.Meta.Kind == realize.KindFile {
				out[path] = r
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// deletedAlone lists the files live at the start of a partition that one
// side deleted while no other side changed them: after the heal they must
// be gone everywhere (no zombie). A side whose record is gone altogether
// (tombstone dropped) deleted the file too.
func deletedAlone(t *testing.T, h *Household, sides [][]int, base map[realize.Path]*real.Record) []realize.Path {
	t.Helper()
	var views []map[realize.Path]*real.Record
	for _, side := range sides {
		if len(side) > 0 {
			views = append(views, records(t, h.Peers[side[0]]))
		}
	}
	var out []realize.Path
	for p, b := range base {
		if b.Deleted {
			continue
		}
		deleted, touched := 0, 0
		for _, v := range views {
			r := v[p]
			switch {
			case r == nil || r.Deleted:
				deleted++
			case r.Version.Compare(b.Version) != realize.Equal:
				touched++
			}
		}
		if deleted > 0 && touched == 0 {
			out = append(out, p)
		}
	}
	return out
}

// checkNoZombie: none of the files listed is live on any peer.
func checkNoZombie(t *testing.T, h *Household, gone []realize.Path) {
	t.Helper()
	for _, p := range h.Peers {
		recs := records(t, p)
		for _, path := range gone {
			if r := recs[path]; r != nil && !r.Deleted {
				t.Fatalf("peer %d: %s was deleted on one side and untouched elsewhere, yet it is back (%v)", p.Index, path, r.Version)
			}
		}
	}
}

// checkTrimmed: once every peer has everything, every history still
// verifies, the index agrees with each peer's own log, no tombstone is
// left, and (without audit retention) every log is down to its head.
func checkTrimmed(t *testing.T, h *Household, headOnly bool) {
	t.Helper()
	// Acks travel with pulls: one more round lets every peer hear that
	// the others have everything, then trimming can take it all.
	if err := h.Converge(t.Context(), 30); err != nil {
		t.Fatal(err)
	}
	if err := h.Trim(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, p := range h.Peers {
		for path, r := range records(t, p) {
			if r.Deleted {
				t.Errorf("peer %d: tombstone of %s left (version %v)", p.Index, path, r.Version)
			}
		}
		if err := real.CheckAgainstHistory(p.DB, Arena, p.Log, p.ID); err != nil {
			t.Errorf("peer %d: index and own log disagree: %v", p.Index, err)
		}
		checkLogs(t, p, headOnly)
	}
}

func checkLogs(t *testing.T, p *Peer, headOnly bool) {
	t.Helper()
	err := p.DB.View(func(tx *bolt.Tx) error {
		ids, err := p.Log.Logs(tx)
		if err != nil {
			return err
		}
		for _, id := range ids {
			v := p.Log.Verify(tx, id.Arena, id.Peer, Verify)
			if v.Err != nil {
				t.Errorf("peer %d: log of %s: %v", p.Index, id.Peer.Short(), v.Err)
			}
			if headOnly && v.Head > 0 && v.First != v.Head {
				t.Errorf("peer %d: log of %s keeps entries %d-%d after full trimming", p.Index, id.Peer.Short(), v.First, v.Head)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
