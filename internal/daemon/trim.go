package daemon

import (
	"context"
	"time"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/consensus"
	"github.com/realizefs/realize/internal/config"
	bolt "go.etcd.io/bbolt"
)

// History trimming and database compaction run in the background, every
// trimEvery (first soon after start), with the history settings in force
// at that moment (docs/decisions/0016-history-trimming.md).
const (
	trimEvery = 10 * time.Minute
	trimFirst = time.Minute
	// compactMinFree is the least free space in the database file worth a
	// compaction (which also needs half the file to be free).
	compactMinFree = 64 << 20
)

// trimLoop trims every arena's history now and then, and compacts the
// database when enough of it is free.
func (n *network) trimLoop(ctx context.Context) {
	wait, every := trimFirst, trimEvery
	if n.d.trimEvery > 0 {
		wait, every = n.d.trimEvery, n.d.trimEvery
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = every
		n.trimOnce(ctx)
		n.compactIfWorth(ctx)
	}
}

// trimOnce runs one trimming pass over every arena.
func (n *network) trimOnce(ctx context.Context) {
	n.noteConnected()
	cfg := n.d.config()
	for _, a := range n.d.arenas.list {
		ac, ok := cfg.Arena(a.Name())
		if !ok {
			continue
		}
		t := &consensus.Trimmer{DB: n.d.db, Log: n.d.hist, Self: n.d.id.ID(), Arena: a, Clock: n.d.clock,
			InactiveAfter: cfg.History.InactiveAfter, AuditKeep: cfg.History.AuditKeep,
			Peers: func() []realize.PeerID { return arenaPeers(cfg, ac) }}
		rep, err := t.Trim(ctx)
		log := n.d.log.With("arena", string(a.Name()))
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("trimming history failed", "err", err)
		case rep.Entries > 0 || rep.Tombstones > 0 || rep.Kept > 0:
			log.Info("history trimmed", "entries", rep.Entries, "tombstones", rep.Tombstones, "inactive_peers", len(rep.Inactive),
				"kept_aside_freed", rep.Kept)
		}
	}
}

// arenaPeers lists the configured peers an arena is shared with.
func arenaPeers(cfg *config.Config, ac *config.Arena) []realize.PeerID {
	var out []realize.PeerID
	for _, p := range cfg.Peers {
		if ac.SharedWith(p.Name) {
			out = append(out, p.Key)
		}
	}
	return out
}

// noteConnected records the peers connected now as heard from: a peer
// with nothing to acknowledge is still alive.
func (n *network) noteConnected() {
	now := n.d.clock.Now()
	err := n.d.db.Update(func(tx *bolt.Tx) error {
		for _, st := range n.host.Status() {
			if st.Connected {
				if err := n.d.hist.SetSeen(tx, st.ID, now); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		n.d.log.Warn("recording connected peers failed", "err", err)
	}
}

// compactIfWorth gives the database's free pages back to the file system
// when they are many (after a large trim).
func (n *network) compactIfWorth(ctx context.Context) {
	u, err := n.d.db.Usage()
	if err != nil || !u.CompactWorth(compactMinFree) {
		return
	}
	st, err := n.d.db.Compact(ctx)
	switch {
	case realize.KindOf(err) == realize.Busy:
		n.d.log.Info("database compaction put off: busy", "err", err)
		return
	case err != nil:
		n.d.log.Warn("compacting the database failed", "err", err)
		return
	}
	n.d.log.Info("database compacted", "before", st.Before, "after", st.After, "copies", st.Copies, "writers_held", st.WritersHeld)
}

// peerActivity tells, for status, when peer was last heard from and
// whether it is inactive (silent longer than history.inactive_after).
func (n *network) peerActivity(tx *bolt.Tx, peer realize.PeerID, connected bool) (time.Time, bool) {
	seen, ok := n.d.hist.Seen(tx, peer)
	if connected {
		return n.d.clock.Now(), false
	}
	if !ok {
		return time.Time{}, false // not noted yet: counts from the first trim
	}
	return seen, n.d.clock.Now().Sub(seen) > n.d.config().History.InactiveAfter
}
