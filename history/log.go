// Package history keeps the per-arena, per-peer change logs of a peer: its
// own log (every change it made or applied) and the logs it received from
// other peers, directly or relayed (remote.go). Each log is an append-only hash chain stored in
// bbolt; its head (last sequence number and entry hash) is signed with the
// recording peer's key, so a log can be verified end to end by anyone who
// knows the peer's public key — including a peer that received it second
// hand.
//
// Appends happen inside a caller's bbolt transaction: the real layer records
// an index update and its history entry in one commit, which is what makes
// "nothing recorded twice, nothing lost" hold across kill -9.
package history

import (
	"errors"
	"fmt"

	"github.com/fxamacker/cbor/v2"
	"github.com/realizefs/realize"
	"github.com/realizefs/realize/internal/store"
	bolt "go.etcd.io/bbolt"
)

// Layout (see docs/storage.md):
//
//	history/<arena>/<peer id, 32 bytes>/
//	    e/<seq, 8 bytes big-endian> -> canonical CBOR entry
//	    s/<seq, 8 bytes big-endian> -> signed head at seq (a checkpoint)
//	    head   -> signed head (CBOR), the newest checkpoint
//	    anchor -> {seq, hash} of the newest entry no longer retained
//
// Every committed batch leaves a checkpoint: the recording peer's signature
// over the log up to that entry. A relay can therefore hand any prefix of a
// log that ends at a checkpoint to another peer, which verifies it against
// the original author's key without trusting the relay.
var (
	bucketHistory = []byte("history")
	bucketEntries = []byte("e")
	bucketSigs    = []byte("s")
	keyHead       = []byte("head")
	keyAnchor     = []byte("anchor")
	keyApplied    = []byte("applied")
)

// headDomain separates head signatures from any other use of the key.
const headDomain = "realize/history-head/v1\x00"

// Head is the signed summary of a log: its last entry.
type Head struct {
	Arena realize.ArenaName
	Peer  realize.PeerID
	Seq   uint64       // last sequence number (0: empty log)
	Hash  realize.Hash // hash of the entry with that sequence number
	Time  int64        // when it was signed
	Sig   []byte       // Ed25519 over headDomain + canonical CBOR of the fields above
}

type wireHead struct {
	Arena string `cbor:"1,keyasint"`
	Peer  []byte `cbor:"2,keyasint"`
	Seq   uint64 `cbor:"3,keyasint"`
	Hash  []byte `cbor:"4,keyasint"`
	Time  int64  `cbor:"5,keyasint"`
	Sig   []byte `cbor:"6,keyasint,omitempty"`
}

type wireAnchor struct {
	Seq  uint64 `cbor:"1,keyasint"`
	Hash []byte `cbor:"2,keyasint"`
}

// Verifier checks a signature by a peer. It is household.Verify in
// production; history does not import household (it is a lower layer).
type Verifier func(peer realize.PeerID, msg, sig []byte) bool

// Log reads and appends history in a database.
type Log struct {
	self   realize.PeerID
	signer realize.Signer // nil for read-only use
	clock  realize.Clock
	codec  *Codec
	notify notifier
}

// New returns a Log for this peer. signer may be nil for read-only use.
func New(self realize.PeerID, signer realize.Signer, clock realize.Clock) *Log {
	if clock == nil {
		clock = realize.SystemClock{}
	}
	return &Log{self: self, signer: signer, clock: clock, codec: NewCodec()}
}

// Self returns the peer whose database this log reads.
func (l *Log) Self() realize.PeerID { return l.self }

// Codec returns the entry codec.
func (l *Log) Codec() *Codec { return l.codec }

// Append adds entries made or applied by this peer to its log of arena,
// inside tx. It fills in Seq, Peer, Prev and (when zero) Time. An entry with
// no Origin is a new local change: Append makes this peer its origin and
// sets this peer's component of Version to the entry's sequence number, so
// callers read the final Version back from the entry after Append returns.
// An entry with an Origin (a change applied from elsewhere, or a conflict
// decision) keeps its Version as given: every peer must record the same. The new head is signed before tx
// commits, so a committed log always has a valid signed head.
func (l *Log) Append(tx *bolt.Tx, arena realize.ArenaName, entries []*realize.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	if l.signer == nil {
		return &realize.Error{Op: "append history", Kind: realize.Unsupported, Arena: arena, Err: errors.New("read-only log")}
	}
	b, err := logBucket(tx, arena, l.self, true)
	if err != nil {
		return err
	}
	head, err := l.readHead(b, arena, l.self)
	if err != nil {
		return err
	}
	eb := b.Bucket(bucketEntries)
	l.signalOnCommit(tx, arena)
	now := l.clock.Now().UnixNano()
	for _, e := range entries {
		e.Seq, e.Arena, e.Peer, e.Prev = head.Seq+1, arena, l.self, head.Hash
		if e.Time == 0 {
			e.Time = now
		}
		if e.Origin.IsZero() {
			e.Origin = l.self
			e.Version = e.Version.With(l.self, e.Seq)
			if e.Op == realize.OpRename {
				e.FromVersion = e.FromVersion.With(l.self, e.Seq)
			}
		}
		if err := validate(e); err != nil {
			return fmt.Errorf("append %s: %w", e.Path, err)
		}
		enc, err := l.codec.Encode(e)
		if err != nil {
			return err
		}
		if err := eb.Put(store.SeqKey(e.Seq), enc); err != nil {
			return err
		}
		head.Seq, head.Hash, head.Time = e.Seq, HashOf(enc), now
		// A checkpoint every CheckpointEvery entries keeps every page a
		// relay sends verifiable, however large one batch is.
		if head.Seq%CheckpointEvery == 0 {
			if err := l.writeHead(b, head); err != nil {
				return err
			}
		}
	}
	if head.Seq%CheckpointEvery == 0 {
		return nil // just written
	}
	return l.writeHead(b, head)
}

// CheckpointEvery bounds the distance between two checkpoints of a log.
const CheckpointEvery = 256

// logBucket returns history/<arena>/<peer>, creating it when asked.
func logBucket(tx *bolt.Tx, arena realize.ArenaName, peer realize.PeerID, create bool) (*bolt.Bucket, error) {
	if !create {
		h := tx.Bucket(bucketHistory)
		if h == nil {
			return nil, nil
		}
		a := h.Bucket([]byte(arena))
		if a == nil {
			return nil, nil
		}
		return a.Bucket(peer[:]), nil
	}
	h, err := tx.CreateBucketIfNotExists(bucketHistory)
	if err != nil {
		return nil, err
	}
	a, err := h.CreateBucketIfNotExists([]byte(arena))
	if err != nil {
		return nil, err
	}
	p, err := a.CreateBucketIfNotExists(peer[:])
	if err != nil {
		return nil, err
	}
	for _, name := range [][]byte{bucketEntries, bucketSigs} {
		c, err := p.CreateBucketIfNotExists(name)
		if err != nil {
			return nil, err
		}
		// Keys only ever grow (sequence numbers): pages split at bbolt's
		// default half-full would stay half empty for good.
		c.FillPercent = store.AppendFill
	}
	return p, nil
}

func (l *Log) readHead(b *bolt.Bucket, arena realize.ArenaName, peer realize.PeerID) (Head, error) {
	raw := b.Get(keyHead)
	if raw == nil {
		return Head{Arena: arena, Peer: peer}, nil
	}
	h, err := l.DecodeHead(raw)
	if err != nil {
		return h, withLog(err, arena, peer)
	}
	if h.Arena != arena || h.Peer != peer {
		return h, &realize.Error{Op: "read history head", Kind: realize.Corrupt, Arena: arena, Peer: peer, Err: errors.New("head belongs to another log")}
	}
	return h, nil
}

// signedBytes is what a head signature covers.
func (l *Log) signedBytes(h Head) ([]byte, error) {
	w := wireHead{Arena: string(h.Arena), Peer: h.Peer[:], Seq: h.Seq, Hash: h.Hash[:], Time: h.Time}
	enc, err := l.codec.enc.Marshal(&w)
	if err != nil {
		return nil, err
	}
	return append([]byte(headDomain), enc...), nil
}

func (l *Log) writeHead(b *bolt.Bucket, h Head) error {
	msg, err := l.signedBytes(h)
	if err != nil {
		return err
	}
	if h.Sig, err = l.signer.Sign(msg); err != nil {
		return &realize.Error{Op: "sign history head", Kind: realize.Other, Arena: h.Arena, Err: err}
	}
	return l.storeHead(b, h)
}

// storeHead records a signed head as the log's head and as a checkpoint.
func (l *Log) storeHead(b *bolt.Bucket, h Head) error {
	enc, err := l.EncodeHead(h)
	if err != nil {
		return err
	}
	if err := b.Bucket(bucketSigs).Put(store.SeqKey(h.Seq), enc); err != nil {
		return err
	}
	return b.Put(keyHead, enc)
}

// EncodeHead returns the wire form of a signed head.
func (l *Log) EncodeHead(h Head) ([]byte, error) {
	w := wireHead{Arena: string(h.Arena), Peer: h.Peer[:], Seq: h.Seq, Hash: h.Hash[:], Time: h.Time, Sig: h.Sig}
	return l.codec.enc.Marshal(&w)
}

// DecodeHead parses the wire form of a signed head.
func (l *Log) DecodeHead(raw []byte) (Head, error) {
	var w wireHead
	var h Head
	if err := l.codec.dec.Unmarshal(raw, &w); err != nil {
		return h, corruptHead(err)
	}
	arena, err := realize.ParseArenaName(w.Arena)
	if err != nil {
		return h, corruptHead(err)
	}
	if len(w.Peer) != len(h.Peer) || len(w.Hash) != len(h.Hash) || len(w.Sig) > 256 {
		return h, corruptHead(errors.New("bad field sizes"))
	}
	h.Arena, h.Seq, h.Time, h.Sig = arena, w.Seq, w.Time, w.Sig
	copy(h.Peer[:], w.Peer)
	copy(h.Hash[:], w.Hash)
	return h, nil
}

func corruptHead(err error) error {
	return &realize.Error{Op: "decode history head", Kind: realize.Corrupt, Err: err}
}

// Head returns the head of a log (Seq 0 for a log that does not exist).
func (l *Log) Head(tx *bolt.Tx, arena realize.ArenaName, peer realize.PeerID) (Head, error) {
	b, err := logBucket(tx, arena, peer, false)
	if err != nil || b == nil {
		return Head{Arena: arena, Peer: peer}, err
	}
	return l.readHead(b, arena, peer)
}

// Applied returns how far this peer has applied a received log: entries
// up to that sequence number are reflected in its index. Storing a page
// and applying it are separate steps, because applying waits on bytes from
// other peers; this cursor is what makes an interrupted apply resume.
func (l *Log) Applied(tx *bolt.Tx, arena realize.ArenaName, peer realize.PeerID) uint64 {
	b, err := logBucket(tx, arena, peer, false)
	if err != nil || b == nil {
		return 0
	}
	if v := b.Get(keyApplied); len(v) == 8 {
		return store.Uint(v)
	}
	return 0
}

// SetApplied records that entries up to seq of a received log are applied.
func (l *Log) SetApplied(tx *bolt.Tx, arena realize.ArenaName, peer realize.PeerID, seq uint64) error {
	b, err := logBucket(tx, arena, peer, true)
	if err != nil {
		return err
	}
	if err := raiseKnown(tx, arena, peer, seq); err != nil {
		return err
	}
	return b.Put(keyApplied, store.SeqKey(seq))
}

// Acks record how far other peers have stored each log of an arena, as
// they told us: acks/<arena>/<peer>/<author> -> seq. Trimming drops
// entries every active peer has acknowledged (trim.go).
var bucketAcks = []byte("acks")

// SetAck records that peer has stored author's log of arena up to seq.
// Acks only move forward.
func (l *Log) SetAck(tx *bolt.Tx, arena realize.ArenaName, peer, author realize.PeerID, seq uint64) error {
	b, err := tx.CreateBucketIfNotExists(bucketAcks)
	if err == nil {
		b, err = b.CreateBucketIfNotExists([]byte(arena))
	}
	if err == nil {
		b, err = b.CreateBucketIfNotExists(peer[:])
	}
	if err != nil {
		return err
	}
	if old := b.Get(author[:]); len(old) == 8 && store.Uint(old) >= seq {
		return nil
	}
	return b.Put(author[:], store.SeqKey(seq))
}

// Ack returns how far peer said it has stored author's log of arena.
func (l *Log) Ack(tx *bolt.Tx, arena realize.ArenaName, peer, author realize.PeerID) uint64 {
	b := tx.Bucket(bucketAcks)
	if b != nil {
		b = b.Bucket([]byte(arena))
	}
	if b != nil {
		b = b.Bucket(peer[:])
	}
	if b == nil {
		return 0
	}
	if v := b.Get(author[:]); len(v) == 8 {
		return store.Uint(v)
	}
	return 0
}

// LogID names one log: an arena and the peer that recorded it.
type LogID struct {
	Arena realize.ArenaName
	Peer  realize.PeerID
}

// Logs lists the logs stored in the database, by arena then peer.
func (l *Log) Logs(tx *bolt.Tx) ([]LogID, error) {
	h := tx.Bucket(bucketHistory)
	if h == nil {
		return nil, nil
	}
	var ids []LogID
	err := h.ForEachBucket(func(an []byte) error {
		arena, err := realize.ParseArenaName(string(an))
		if err != nil {
			return &realize.Error{Op: "list history", Kind: realize.Corrupt, Err: err}
		}
		return h.Bucket(an).ForEachBucket(func(pk []byte) error {
			var p realize.PeerID
			if len(pk) != len(p) {
				return &realize.Error{Op: "list history", Kind: realize.Corrupt, Arena: arena, Err: errors.New("bad peer key")}
			}
			copy(p[:], pk)
			ids = append(ids, LogID{Arena: arena, Peer: p})
			return nil
		})
	})
	return ids, err
}

// Scan calls fn for each entry of a log with Seq >= from, in order. It stops
// without error when fn returns ErrStop.
func (l *Log) Scan(tx *bolt.Tx, arena realize.ArenaName, peer realize.PeerID, from uint64, fn func(e *realize.Entry, hash realize.Hash) error) error {
	b, err := logBucket(tx, arena, peer, false)
	if err != nil || b == nil {
		return err
	}
	c := b.Bucket(bucketEntries).Cursor()
	for k, v := c.Seek(store.SeqKey(from)); k != nil; k, v = c.Next() {
		e, err := l.codec.Decode(v)
		if err != nil {
			return withLog(err, arena, peer)
		}
		if err := fn(e, HashOf(v)); err != nil {
			if errors.Is(err, ErrStop) {
				return nil
			}
			return err
		}
	}
	return nil
}

// ErrStop ends a Scan early without an error.
var ErrStop = errors.New("stop scan")

func withLog(err error, arena realize.ArenaName, peer realize.PeerID) error {
	var re *realize.Error
	if errors.As(err, &re) && re.Arena == "" {
		cp := *re
		cp.Arena, cp.Peer = arena, peer
		return &cp
	}
	return err
}

// anchor returns the sequence number and hash of the newest entry that is
// no longer retained (zero for a log that still has its first entry).
func (l *Log) anchor(b *bolt.Bucket) (uint64, realize.Hash, error) {
	var h realize.Hash
	raw := b.Get(keyAnchor)
	if raw == nil {
		return 0, h, nil
	}
	var w wireAnchor
	if err := cbor.Unmarshal(raw, &w); err != nil || len(w.Hash) != len(h) {
		return 0, h, &realize.Error{Op: "read history anchor", Kind: realize.Corrupt, Err: fmt.Errorf("bad anchor: %v", err)}
	}
	copy(h[:], w.Hash)
	return w.Seq, h, nil
}
