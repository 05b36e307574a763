package history_test

import (
	"testing"
	"time"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/history"
	bolt "go.etcd.io/bbolt"
)

// TestTrimTo: entries go oldest first, in bounded batches, never the head;
// what remains verifies from the anchor; the checkpoints of dropped entries
// go too; pages below the anchor are refused (catch up by snapshot).
func TestTrimTo(t *testing.T) {
	tests := []struct {
		name      string
		last      uint64
		limit     int
		wantN     int
		wantFirst uint64
	}{
		{"nothing", 0, 0, 0, 1},
		{"some", 3, 0, 3, 4},
		{"bounded", 5, 2, 2, 3},
		{"never the head", 99, 0, 5, 6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSigner(50)
			db := openDB(t, s.ID())
			l := history.New(s.ID(), s, nil)
			appendN(t, db, l, "docs", 6)
			var n int
			if err := db.Update(func(tx *bolt.Tx) (err error) { n, err = l.TrimTo(tx, "docs", s.ID(), tc.last, tc.limit); return err }); err != nil {
				t.Fatal(err)
			}
			if n != tc.wantN {
				t.Errorf("dropped %d, want %d", n, tc.wantN)
			}
			db.View(func(tx *bolt.Tx) error {
				first, head, err := l.Retained(tx, "docs", s.ID())
				if err != nil || first != tc.wantFirst || head != 6 {
					t.Errorf("retained %d-%d (%v), want %d-6", first, head, err, tc.wantFirst)
				}
				if v := l.Verify(tx, "docs", s.ID(), verifier); v.Err != nil || v.First != tc.wantFirst {
					t.Errorf("verify = %+v", v)
				}
				sigs := tx.Bucket([]byte("history")).Bucket([]byte("docs")).Bucket(s.ID().Bytes()).Bucket([]byte("s"))
				if k, _ := sigs.Cursor().First(); k == nil || int(k[7]) < int(tc.wantFirst) {
					t.Errorf("a checkpoint of a dropped entry is left: %v", k)
				}
				if _, err := l.ReadPage(tx, "docs", s.ID(), tc.wantFirst); err != nil {
					t.Errorf("page from the first kept entry: %v", err)
				}
				if tc.wantFirst > 1 {
					if _, err := l.ReadPage(tx, "docs", s.ID(), tc.wantFirst-1); realize.KindOf(err) != realize.NotExist {
						t.Errorf("page from a dropped entry: %v, want not-exist", err)
					}
				}
				return nil
			})
		})
	}
}

// TestAuditFloor: the entries older than the cutoff, up to a limit, stop
// at the first one within the retention.
func TestAuditFloor(t *testing.T) {
	s := newSigner(51)
	db := openDB(t, s.ID())
	clock := &fixedClock{t: time.Unix(1000, 0)} // one second per call
	l := history.New(s.ID(), s, clock)
	appendN(t, db, l, "docs", 5) // times 1001, 1002, ... (one Now per append)
	tests := []struct {
		cutoff int64
		upTo   uint64
		want   uint64
	}{
		{1000, 10, 0},
		{1002, 10, 1},
		{1004, 10, 3},
		{1004, 2, 2},
		{9999, 10, 5},
	}
	for _, tc := range tests {
		db.View(func(tx *bolt.Tx) error {
			got, err := l.AuditFloor(tx, "docs", s.ID(), time.Unix(tc.cutoff, 0), tc.upTo)
			if err != nil || got != tc.want {
				t.Errorf("AuditFloor(%d, %d) = %d, %v; want %d", tc.cutoff, tc.upTo, got, err, tc.want)
			}
			return nil
		})
	}
}

// TestKnownSurvivesReset: Known follows the applied cursors and this
// peer's own head, never goes back, and outlives a reset copy.
func TestKnownSurvivesReset(t *testing.T) {
	a, b := newSigner(52), newSigner(53)
	db := openDB(t, a.ID())
	l := history.New(a.ID(), a, nil)
	appendN(t, db, l, "docs", 2)
	err := db.Update(func(tx *bolt.Tx) error {
		if err := l.SetApplied(tx, "docs", b.ID(), 7); err != nil {
			return err
		}
		if err := l.SetApplied(tx, "docs", b.ID(), 5); err != nil { // a retry moves the cursor back
			return err
		}
		return l.ResetCopy(tx, "docs", b.ID())
	})
	if err != nil {
		t.Fatal(err)
	}
	db.View(func(tx *bolt.Tx) error {
		kv, err := l.Known(tx, "docs")
		if err != nil || kv[a.ID()] != 2 || kv[b.ID()] != 7 {
			t.Errorf("known = %v, %v; want own 2, b 7", kv, err)
		}
		if l.Applied(tx, "docs", b.ID()) != 0 {
			t.Error("applied cursor survived the reset")
		}
		if kv, _ := l.Known(tx, "other"); len(kv) != 0 {
			t.Errorf("another arena knows %v", kv)
		}
		return nil
	})
}

func TestSeenMovesForward(t *testing.T) {
	a, b := newSigner(54), newSigner(55)
	db := openDB(t, a.ID())
	clock := &fixedClock{t: time.Unix(5000, 0)}
	l := history.New(a.ID(), a, clock)
	db.Update(func(tx *bolt.Tx) error {
		if _, ok := l.Seen(tx, b.ID()); ok {
			t.Error("seen before anything")
		}
		l.Heard(tx, b.ID())                    // 5001
		l.SetSeen(tx, b.ID(), time.Unix(3, 0)) // older: ignored
		return nil
	})
	db.View(func(tx *bolt.Tx) error {
		if got, ok := l.Seen(tx, b.ID()); !ok || got.Unix() != 5001 {
			t.Errorf("seen = %v, %v; want 5001", got.Unix(), ok)
		}
		return nil
	})
}
