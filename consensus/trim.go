package consensus

import (
	"context"
	"time"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/history"
	"github.com/realizefs/realize/internal/store"
	"github.com/realizefs/realize/real"
	bolt "go.etcd.io/bbolt"
)

// Trimmer drops, for one arena, the history entries and tombstones no one
// needs any more (docs/decisions/0016-history-trimming.md):
//
//   - An entry of a log leaves the working log once every active peer
//     (other than the log's author) has acknowledged storing it, at least
//     one peer has when all are inactive, and, for another peer's log, this
//     peer has applied it. It is dropped once it is also older than the
//     audit retention.
//   - A tombstone is dropped once every peer sharing the arena, inactive
//     ones included, has acknowledged the entry that made the deletion, and
//     this peer has decided every change the deletion followed
//     (history.Log.Known): nothing older can then come back.
//
// A peer is inactive when it has not been heard from (history.Log.Seen)
// for InactiveAfter; a peer never heard from counts from the first time a
// trim saw it configured.
type Trimmer struct {
	DB    *store.DB
	Log   *history.Log
	Self  realize.PeerID
	Arena *real.Arena
	// Peers returns the peers the arena is shared with, as configured now
	// (not this one).
	Peers         func() []realize.PeerID
	InactiveAfter time.Duration
	AuditKeep     time.Duration // 0: keep only what the working log needs
	Clock         realize.Clock // nil: the system clock
}

// TrimReport says what one Trim did.
type TrimReport struct {
	Entries    int              // entries dropped, all logs of the arena
	Tombstones int              // tombstones dropped
	Inactive   []realize.PeerID // peers that no longer hold back trimming
	// Kept counts kept-aside files freed that no listed version named
	// (real.Arena.SweepKept): normally none.
	Kept int
}

// trimBatch bounds the entries removed per transaction.
const trimBatch = 8192

// Trim runs one trimming pass over the arena.
func (t *Trimmer) Trim(ctx context.Context) (TrimReport, error) {
	var rep TrimReport
	now := t.now()
	peers := t.Peers()
	active, err := t.activity(peers, now)
	if err != nil {
		return rep, err
	}
	for _, p := range peers {
		if !active[p] {
			rep.Inactive = append(rep.Inactive, p)
		}
	}
	var plan map[realize.PeerID]uint64
	err = t.DB.View(func(tx *bolt.Tx) (err error) {
		plan, err = t.plan(tx, peers, active, now)
		return err
	})
	if err != nil {
		return rep, err
	}
	for author, last := range plan {
		n, err := t.trimLog(ctx, author, last)
		rep.Entries += n
		if err != nil {
			return rep, err
		}
	}
	if rep.Tombstones, err = t.dropTombstones(ctx, peers); err != nil {
		return rep, err
	}
	rep.Kept, err = t.Arena.SweepKept()
	return rep, err
}

func (t *Trimmer) now() time.Time {
	if t.Clock == nil {
		return time.Now()
	}
	return t.Clock.Now()
}

// activity returns which peers were heard from within InactiveAfter, first
// noting the peers never heard from as seen now.
func (t *Trimmer) activity(peers []realize.PeerID, now time.Time) (map[realize.PeerID]bool, error) {
	active := map[realize.PeerID]bool{}
	err := t.DB.Update(func(tx *bolt.Tx) error {
		for _, p := range peers {
			seen, ok := t.Log.Seen(tx, p)
			if !ok {
				if err := t.Log.SetSeen(tx, p, now); err != nil {
					return err
				}
				seen = now
			}
			active[p] = now.Sub(seen) <= t.InactiveAfter
		}
		return nil
	})
	return active, err
}

// plan returns, for each log of the arena with something to drop, the last
// sequence number to drop.
func (t *Trimmer) plan(tx *bolt.Tx, peers []realize.PeerID, active map[realize.PeerID]bool, now time.Time) (map[realize.PeerID]uint64, error) {
	ids, err := t.Log.Logs(tx)
	if err != nil {
		return nil, err
	}
	plan := map[realize.PeerID]uint64{}
	for _, id := range ids {
		if id.Arena != t.Arena.Name() {
			continue
		}
		first, head, err := t.Log.Retained(tx, id.Arena, id.Peer)
		if err != nil {
			return nil, err
		}
		work := t.working(tx, id.Peer, head, peers, active)
		last := work
		if t.AuditKeep > 0 {
			if last, err = t.Log.AuditFloor(tx, id.Arena, id.Peer, now.Add(-t.AuditKeep), work); err != nil {
				return nil, err
			}
		}
		if head > 0 {
			last = min(last, head-1) // the head entry always stays
		}
		if last >= first {
			plan[id.Peer] = last
		}
	}
	return plan, nil
}

// working returns the last entry of author's log that the working log no
// longer needs: every active peer but the author acknowledged it (or, when
// none is active, at least one did), and this peer applied it.
func (t *Trimmer) working(tx *bolt.Tx, author realize.PeerID, head uint64, peers []realize.PeerID, active map[realize.PeerID]bool) uint64 {
	base := head
	if author != t.Self {
		base = t.Log.Applied(tx, t.Arena.Name(), author)
	}
	var activeMin, anyMax uint64
	nActive, nOthers := 0, 0
	for _, p := range peers {
		if p == author {
			continue
		}
		ack := t.Log.Ack(tx, t.Arena.Name(), p, author)
		if active[p] && (nActive == 0 || ack < activeMin) {
			activeMin = ack
		}
		if active[p] {
			nActive++
		}
		anyMax = max(anyMax, ack)
		nOthers++
	}
	switch {
	case nOthers == 0:
		return base // nobody else needs this log from here
	case nActive == 0:
		return min(anyMax, base) // never drop what no other peer has
	}
	return min(activeMin, base)
}

// trimLog drops entries of one log up to last, a batch per transaction.
func (t *Trimmer) trimLog(ctx context.Context, author realize.PeerID, last uint64) (int, error) {
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		var n int
		err := t.DB.Update(func(tx *bolt.Tx) (err error) {
			n, err = t.Log.TrimTo(tx, t.Arena.Name(), author, last, trimBatch)
			return err
		})
		total += n
		if err != nil || n < trimBatch {
			return total, err
		}
	}
}

// dropTombstones drops the tombstones no peer needs any more.
func (t *Trimmer) dropTombstones(ctx context.Context, peers []realize.PeerID) (int, error) {
	var known realize.VersionVector
	acks := map[realize.PeerID]map[realize.PeerID]uint64{} // peer -> author -> acknowledged
	err := t.DB.View(func(tx *bolt.Tx) (err error) {
		if known, err = t.Log.Known(tx, t.Arena.Name()); err != nil {
			return err
		}
		ids, err := t.Log.Logs(tx)
		if err != nil {
			return err
		}
		for _, p := range peers {
			acks[p] = map[realize.PeerID]uint64{}
			for _, id := range ids {
				if id.Arena == t.Arena.Name() {
					acks[p][id.Peer] = t.Log.Ack(tx, id.Arena, p, id.Peer)
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return t.Arena.DropTombstones(ctx, func(_ realize.Path, r *real.Record) bool {
		return Forgettable(r, known, peers, acks)
	})
}

// Forgettable tells whether a tombstone can be dropped: this peer has
// decided every change the deletion followed (known covers its version),
// and every peer has acknowledged the change of each version in its
// frontier (the deletion itself), so none still needs it to recognise an
// older version of the path.
func Forgettable(r *real.Record, known realize.VersionVector, peers []realize.PeerID, acks map[realize.PeerID]map[realize.PeerID]uint64) bool {
	if !r.Deleted {
		return false
	}
	counter := realize.ResolveCounter()
	for p, n := range r.Version {
		// The resolution counter is no peer's log (decision 0015): the
		// record carrying it shows the resolution was applied here.
		if p != counter && known[p] < n {
			return false
		}
	}
	for _, alt := range r.Frontier() {
		if alt.Origin.IsZero() {
			return false
		}
		n := alt.Version[alt.Origin]
		for _, p := range peers {
			if p != alt.Origin && acks[p][alt.Origin] < n {
				return false
			}
		}
	}
	return true
}
