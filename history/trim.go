package history

import (
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/realizefs/realize"
	"github.com/realizefs/realize/internal/store"
	bolt "go.etcd.io/bbolt"
)

// Trimming (docs/decisions/0016-history-trimming.md). A log's entries are
// kept while anyone needs them: a peer that has not stored them yet (the
// working log, decided by the caller from acks) or the audit retention.
// Dropping the oldest ones keeps the hash of the newest dropped entry as
// the anchor, so what remains still verifies from there to the signed head.

// TrimTo removes the entries of a log with Seq <= last, oldest first, at
// most limit of them (0: no limit), with the checkpoints they carried. The
// head entry is never removed: a log always ends at a verifiable entry. It
// returns how many entries went.
func (l *Log) TrimTo(tx *bolt.Tx, arena realize.ArenaName, peer realize.PeerID, last uint64, limit int) (int, error) {
	b, err := logBucket(tx, arena, peer, false)
	if err != nil || b == nil {
		return 0, err
	}
	head, err := l.readHead(b, arena, peer)
	if err != nil {
		return 0, err
	}
	if last >= head.Seq {
		if head.Seq == 0 {
			return 0, nil
		}
		last = head.Seq - 1
	}
	c := b.Bucket(bucketEntries).Cursor()
	var dropped []byte
	var droppedSeq uint64
	n := 0
	for k, v := c.First(); k != nil && store.Uint(k) <= last && (limit <= 0 || n < limit); k, v = c.First() {
		droppedSeq, dropped = store.Uint(k), append(dropped[:0], v...)
		if err := c.Delete(); err != nil {
			return n, err
		}
		n++
	}
	if n == 0 {
		return 0, nil
	}
	if err := dropCheckpoints(b.Bucket(bucketSigs), droppedSeq); err != nil {
		return n, err
	}
	h := HashOf(dropped)
	enc, err := cbor.Marshal(wireAnchor{Seq: droppedSeq, Hash: h[:]})
	if err != nil {
		return n, err
	}
	return n, b.Put(keyAnchor, enc)
}

// dropCheckpoints removes the checkpoints of entries up to last: nothing
// they sign is left to check them against.
func dropCheckpoints(sigs *bolt.Bucket, last uint64) error {
	c := sigs.Cursor()
	for k, _ := c.First(); k != nil && store.Uint(k) <= last; k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// Retained returns the first entry a log still keeps and its head (first
// is head+1 for an empty log).
func (l *Log) Retained(tx *bolt.Tx, arena realize.ArenaName, peer realize.PeerID) (first, head uint64, err error) {
	b, err := logBucket(tx, arena, peer, false)
	if err != nil || b == nil {
		return 1, 0, err
	}
	h, err := l.readHead(b, arena, peer)
	if err != nil {
		return 0, 0, err
	}
	anchor, _, err := l.anchor(b)
	return anchor + 1, h.Seq, err
}

// AuditFloor returns the last entry of a log, at most upTo, that is older
// than cutoff: the entries up to it are past the audit retention. Entries
// are scanned from the oldest and the scan stops at the first one within
// the retention, so the entries read are those about to be dropped.
func (l *Log) AuditFloor(tx *bolt.Tx, arena realize.ArenaName, peer realize.PeerID, cutoff time.Time, upTo uint64) (uint64, error) {
	b, err := logBucket(tx, arena, peer, false)
	if err != nil || b == nil {
		return 0, err
	}
	floor, _, err := l.anchor(b)
	if err != nil {
		return 0, err
	}
	limit := cutoff.UnixNano()
	c := b.Bucket(bucketEntries).Cursor()
	for k, v := c.First(); k != nil && store.Uint(k) <= upTo; k, v = c.Next() {
		e, err := l.codec.Decode(v)
		if err != nil {
			return 0, withLog(err, arena, peer)
		}
		if e.Time >= limit {
			break
		}
		floor = e.Seq
	}
	return floor, nil
}

// Known: known/<arena>/<peer> -> seq. How far this peer's index reflects
// each other peer's changes: every change a peer made with a sequence
// number up to that value has been decided here (taken, found older, or
// skipped). It is the highest applied cursor each log ever had, so unlike
// the cursor it survives ResetCopy (a catch-up by snapshot).
var bucketKnown = []byte("known")

// raiseKnown records that author's changes up to seq are decided here.
func raiseKnown(tx *bolt.Tx, arena realize.ArenaName, author realize.PeerID, seq uint64) error {
	b, err := tx.CreateBucketIfNotExists(bucketKnown)
	if err == nil {
		b, err = b.CreateBucketIfNotExists([]byte(arena))
	}
	if err != nil {
		return err
	}
	if old := b.Get(author[:]); len(old) == 8 && store.Uint(old) >= seq {
		return nil
	}
	return b.Put(author[:], store.SeqKey(seq))
}

// Known returns, per peer, how far this peer's index reflects that peer's
// changes to arena: its own log's head for itself, the highest applied
// cursor for the others. A version of a path whose origin's counter is
// within it has been decided here already; if the path has no record
// now, a deletion that followed it was forgotten (its tombstone dropped),
// and the version must not come back.
func (l *Log) Known(tx *bolt.Tx, arena realize.ArenaName) (realize.VersionVector, error) {
	kv := realize.VersionVector{}
	if b := tx.Bucket(bucketKnown); b != nil {
		if ab := b.Bucket([]byte(arena)); ab != nil {
			err := ab.ForEach(func(k, v []byte) error {
				var p realize.PeerID
				if len(k) == len(p) && len(v) == 8 {
					copy(p[:], k)
					kv[p] = store.Uint(v)
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
	}
	own, err := l.Head(tx, arena, l.self)
	if err != nil {
		return nil, err
	}
	if own.Seq > 0 {
		kv[l.self] = own.Seq
	}
	return kv, nil
}

// Seen: seen/<peer> -> Unix ns of the last time the peer was heard from
// (it acknowledged history, or was connected when trimming looked).
var bucketSeen = []byte("seen")

// SetSeen records that peer was heard from at t. It only moves forward.
func (l *Log) SetSeen(tx *bolt.Tx, peer realize.PeerID, t time.Time) error {
	b, err := tx.CreateBucketIfNotExists(bucketSeen)
	if err != nil {
		return err
	}
	if old := b.Get(peer[:]); len(old) == 8 && int64(store.Uint(old)) >= t.UnixNano() {
		return nil
	}
	return b.Put(peer[:], store.SeqKey(uint64(t.UnixNano())))
}

// Seen returns when peer was last heard from, if ever.
func (l *Log) Seen(tx *bolt.Tx, peer realize.PeerID) (time.Time, bool) {
	b := tx.Bucket(bucketSeen)
	if b == nil {
		return time.Time{}, false
	}
	v := b.Get(peer[:])
	if len(v) != 8 {
		return time.Time{}, false
	}
	return time.Unix(0, int64(store.Uint(v))), true
}

// Heard records that peer was heard from now (the log's clock).
func (l *Log) Heard(tx *bolt.Tx, peer realize.PeerID) error {
	return l.SetSeen(tx, peer, l.clock.Now())
}
