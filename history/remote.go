package history

import (
	"errors"
	"fmt"

	"github.com/fxamacker/cbor/v2"
	"github.com/realizefs/realize"
	"github.com/realizefs/realize/internal/store"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Page is a run of consecutive entries of one log as it travels between
// peers: the entries' canonical encodings, ending at a checkpoint, and that
// checkpoint's signed head. A page verifies on its own against the log
// author's key, whoever relays it.
type Page struct {
	Arena   realize.ArenaName
	Peer    realize.PeerID // the log's author
	Entries [][]byte       // consecutive sequence numbers
	Head    []byte         // EncodeHead of the checkpoint at the last entry
}

// LogHead names a log a peer offers, and how far it goes.
type LogHead struct {
	Peer realize.PeerID // the log's author
	Seq  uint64
}

// Heads lists the logs of arena stored here (this peer's own and received
// ones) with their head sequence numbers: what a peer offers others.
func (l *Log) Heads(tx *bolt.Tx, arena realize.ArenaName) ([]LogHead, error) {
	ids, err := l.Logs(tx)
	if err != nil {
		return nil, err
	}
	var out []LogHead
	for _, id := range ids {
		if id.Arena != arena {
			continue
		}
		h, err := l.Head(tx, arena, id.Peer)
		if err != nil {
			return nil, err
		}
		out = append(out, LogHead{Peer: id.Peer, Seq: h.Seq})
	}
	return out, nil
}

// MaxPageEntries bounds a page; it is at least CheckpointEvery so that a
// page always reaches a checkpoint.
const MaxPageEntries = 4 * CheckpointEvery

// ReadPage returns entries of a log from sequence number from, up to the
// last checkpoint within MaxPageEntries entries. It returns nil when there
// is nothing from there on. from below the first retained entry returns a
// Kind NotExist error: the reader has to catch up by snapshot; from 0 reads
// from the first retained entry, whatever it is.
func (l *Log) ReadPage(tx *bolt.Tx, arena realize.ArenaName, peer realize.PeerID, from uint64) (*Page, error) {
	b, err := logBucket(tx, arena, peer, false)
	if err != nil || b == nil {
		return nil, err
	}
	anchor, _, err := l.anchor(b)
	if err != nil {
		return nil, err
	}
	if from == 0 {
		from = anchor + 1 // "from the first entry kept": a reader catching up
	} else if from <= anchor {
		return nil, &realize.Error{Op: "read history page", Kind: realize.NotExist, Arena: arena, Peer: peer,
			Err: fmt.Errorf("entries before %d are no longer kept", anchor+1)}
	}
	p := &Page{Arena: arena, Peer: peer}
	sigs := b.Bucket(bucketSigs)
	cut := 0
	c := b.Bucket(bucketEntries).Cursor()
	for k, v := c.Seek(store.SeqKey(from)); k != nil && len(p.Entries) < MaxPageEntries; k, v = c.Next() {
		p.Entries = append(p.Entries, append([]byte(nil), v...))
		if h := sigs.Get(k); h != nil {
			cut, p.Head = len(p.Entries), append([]byte(nil), h...)
		}
	}
	if cut == 0 {
		return nil, nil
	}
	p.Entries = p.Entries[:cut]
	return p, nil
}

// AppendRemote verifies a page of another peer's log and stores what is new
// in it, inside tx. It checks the head's signature with verify (the
// author's key), that every entry decodes, belongs to that log and chains to
// the one before it — starting from the last entry stored, or from the page
// itself when nothing of the log is stored yet (a peer catching up after a
// snapshot) — and that the last entry is the one the head names. Entries
// already stored are skipped, so a page may be delivered twice. It returns
// the new entries, in order, for the caller to apply.
func (l *Log) AppendRemote(tx *bolt.Tx, p *Page, verify Verifier) ([]*realize.Entry, error) {
	fail := func(err error) ([]*realize.Entry, error) {
		return nil, &realize.Error{Op: "append received history", Kind: realize.Corrupt, Arena: p.Arena, Peer: p.Peer, Err: err}
	}
	if p.Peer == l.self {
		return nil, &realize.Error{Op: "append received history", Kind: realize.Invalid, Arena: p.Arena, Peer: p.Peer,
			Err: errors.New("a peer's own log is never taken from the network")}
	}
	if len(p.Entries) == 0 || len(p.Entries) > MaxPageEntries {
		return fail(fmt.Errorf("page of %d entries", len(p.Entries)))
	}
	head, err := l.DecodeHead(p.Head)
	if err != nil {
		return fail(err)
	}
	if head.Arena != p.Arena || head.Peer != p.Peer {
		return fail(errors.New("head belongs to another log"))
	}
	msg, err := l.signedBytes(head)
	if err != nil {
		return fail(err)
	}
	if !verify(head.Peer, msg, head.Sig) {
		return fail(errors.New("head signature does not verify with the author's key"))
	}
	b, err := logBucket(tx, p.Arena, p.Peer, true)
	if err != nil {
		return nil, err
	}
	have, err := l.readHead(b, p.Arena, p.Peer)
	if err != nil {
		return nil, err
	}
	if head.Seq <= have.Seq {
		return nil, nil // all of it is stored already
	}
	fresh, first, err := l.checkPage(p, head, have)
	if err != nil {
		return fail(err)
	}
	if len(fresh) == 0 {
		return nil, nil
	}
	if have.Seq == 0 && first.Seq > 1 {
		// Catching up: the chain starts mid-log, anchored where the page begins.
		enc, err := cbor.Marshal(wireAnchor{Seq: first.Seq - 1, Hash: first.Prev[:]})
		if err == nil {
			err = b.Put(keyAnchor, enc)
		}
		if err != nil {
			return nil, err
		}
	}
	l.signalOnCommit(tx, p.Arena)
	eb := b.Bucket(bucketEntries)
	for i, e := range fresh {
		if err := eb.Put(store.SeqKey(e.Seq), p.Entries[len(p.Entries)-len(fresh)+i]); err != nil {
			return nil, err
		}
	}
	return fresh, l.storeHead(b, head)
}

// checkPage decodes and chains a page against what is stored (have). It
// returns the entries not yet stored and the page's first entry.
func (l *Log) checkPage(p *Page, head Head, have Head) ([]*realize.Entry, *realize.Entry, error) {
	var fresh []*realize.Entry
	var first *realize.Entry
	prevSeq, prev := have.Seq, have.Hash
	for i, raw := range p.Entries {
		e, err := l.codec.Decode(raw)
		if err != nil {
			return nil, nil, err
		}
		if e.Arena != p.Arena || e.Peer != p.Peer {
			return nil, nil, fmt.Errorf("entry %d belongs to another log", e.Seq)
		}
		if i == 0 {
			first = e
			if have.Seq == 0 {
				prevSeq, prev = e.Seq-1, e.Prev
			}
		}
		if e.Seq == 1 && !e.Prev.IsZero() {
			return nil, nil, errors.New("the first entry of a log chains to something")
		}
		h := HashOf(raw)
		switch {
		case e.Seq <= have.Seq:
			continue // already stored (a repeated delivery)
		case e.Seq != prevSeq+1 || e.Prev != prev:
			return nil, nil, fmt.Errorf("entry %d does not follow entry %d", e.Seq, prevSeq)
		}
		fresh = append(fresh, e)
		prevSeq, prev = e.Seq, h
	}
	if prevSeq != head.Seq || prev != head.Hash {
		return nil, nil, fmt.Errorf("the signed head names entry %d, the page ends at %d", head.Seq, prevSeq)
	}
	return fresh, first, nil
}

// ResetCopy forgets this peer's copy of another peer's log of arena, so
// that it can be taken up again from wherever a source still keeps it
// (after catching up by snapshot). A peer's own log is never reset.
func (l *Log) ResetCopy(tx *bolt.Tx, arena realize.ArenaName, author realize.PeerID) error {
	if author == l.self {
		return &realize.Error{Op: "reset history copy", Kind: realize.Invalid, Arena: arena, Peer: author, Err: errors.New("own log")}
	}
	h := tx.Bucket(bucketHistory)
	if h == nil || h.Bucket([]byte(arena)) == nil {
		return nil
	}
	err := h.Bucket([]byte(arena)).DeleteBucket(author[:])
	if errors.Is(err, berrors.ErrBucketNotFound) {
		return nil
	}
	return err
}
