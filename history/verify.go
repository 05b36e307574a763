package history

import (
	"errors"
	"fmt"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/internal/store"
	bolt "go.etcd.io/bbolt"
)

// Verification is the outcome of checking one log.
type Verification struct {
	LogID
	Entries int    // entries checked
	First   uint64 // first retained sequence number
	Head    uint64 // signed head sequence number
	Err     error  // nil when the log is intact
}

// Verify checks one log: every retained entry decodes and validates,
// sequence numbers are contiguous from the anchor, each entry's Prev is the
// hash of the one before it, the last entry is the one the head names, and
// the head's signature is the recording peer's.
func (l *Log) Verify(tx *bolt.Tx, arena realize.ArenaName, peer realize.PeerID, verify Verifier) Verification {
	v := Verification{LogID: LogID{Arena: arena, Peer: peer}}
	b, err := logBucket(tx, arena, peer, false)
	if err != nil || b == nil {
		v.Err = err
		return v
	}
	head, err := l.readHead(b, arena, peer)
	if err != nil {
		v.Err = err
		return v
	}
	v.Head = head.Seq
	seq, prev, err := l.anchor(b)
	if err != nil {
		v.Err = err
		return v
	}
	v.First = seq + 1
	sigs := b.Bucket(bucketSigs)
	err = l.Scan(tx, arena, peer, 0, func(e *realize.Entry, h realize.Hash) error {
		seq++
		switch {
		case e.Seq != seq:
			return fmt.Errorf("entry %d found where %d was expected", e.Seq, seq)
		case e.Prev != prev:
			return fmt.Errorf("entry %d does not chain to entry %d", e.Seq, e.Seq-1)
		case e.Arena != arena || e.Peer != peer:
			return fmt.Errorf("entry %d belongs to another log", e.Seq)
		}
		prev = h
		v.Entries++
		if raw := sigs.Get(store.SeqKey(e.Seq)); raw != nil {
			if err := l.checkCheckpoint(raw, e.Seq, h, verify); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = l.checkHead(head, seq, prev, verify)
	}
	if err != nil {
		v.Err = &realize.Error{Op: "verify history", Kind: realize.Corrupt, Arena: arena, Peer: peer, Err: err}
	}
	return v
}

// checkCheckpoint verifies one stored checkpoint against the entry it names.
func (l *Log) checkCheckpoint(raw []byte, seq uint64, h realize.Hash, verify Verifier) error {
	cp, err := l.DecodeHead(raw)
	if err != nil {
		return err
	}
	return l.checkHead(cp, seq, h, verify)
}

func (l *Log) checkHead(head Head, seq uint64, last realize.Hash, verify Verifier) error {
	if head.Seq != seq || head.Hash != last {
		return fmt.Errorf("signed head names entry %d, log ends at %d", head.Seq, seq)
	}
	if head.Seq == 0 {
		return nil
	}
	msg, err := l.signedBytes(head)
	if err != nil {
		return err
	}
	if !verify(head.Peer, msg, head.Sig) {
		return errors.New("head signature does not verify with the peer's key")
	}
	return nil
}

// DropBefore removes the entries of a log with Seq < seq; see TrimTo.
func (l *Log) DropBefore(tx *bolt.Tx, arena realize.ArenaName, peer realize.PeerID, seq uint64) (int, error) {
	if seq == 0 {
		return 0, nil
	}
	return l.TrimTo(tx, arena, peer, seq-1, 0)
}
