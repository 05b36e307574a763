// Package realize holds the vocabulary every other package of Realize speaks:
// arena names and paths, content hashes, peer identities, history entries,
// version vectors and errors. It is deliberately small and imports nothing
// from the rest of the module, so that every layer can depend on it and none
// of them has to depend on another just to name a thing.
//
// Realize is a peer-to-peer, partially synced filesystem. Each machine (peer)
// runs one daemon; a set of peers that know each other's keys is a household;
// a named tree of files shared by some peers is an arena. The files a peer
// keeps as plain local files are "real", the others are "unreal": listed,
// fetched block by verified block on read, cached under a quota. Every change
// a peer sees is appended to that peer's own per-arena history, a hash chain
// whose head is signed with the peer's key.
//
// The layering of the module is written down in docs/architecture.md and
// enforced by a test; in short, this package is the bottom, the daemon
// wiring (internal/daemon) and the CLI (cmd/realize) are the top.
package realize

import (
	"time"
)

// Kind says what a path names. The numeric values are stored on disk and
// travel on the wire: they are add-only.
type Kind uint8

const (
	KindNone    Kind = 0 // nothing (a deleted path)
	KindFile    Kind = 1
	KindDir     Kind = 2
	KindSymlink Kind = 3
)

func (k Kind) String() string {
	switch k {
	case KindNone:
		return "none"
	case KindFile:
		return "file"
	case KindDir:
		return "dir"
	case KindSymlink:
		return "symlink"
	}
	return "kind?"
}

// Op is what a history entry did. Values are stored and sent: add-only.
type Op uint8

const (
	OpAdd     Op = 1 // a file appeared at Path
	OpReplace Op = 2 // the file at Path got new content or metadata
	OpRemove  Op = 3 // the file or symlink at Path was deleted
	OpRename  Op = 4 // the file or symlink at From moved to Path (no bytes change)
	OpMkdir   Op = 5 // a directory appeared at Path
	OpRmdir   Op = 6 // the directory at Path was deleted
	OpSymlink Op = 7 // a symlink appeared at, or was re-pointed at, Path
	// OpResolve: a person resolved the conflict at Path. Meta is what the
	// path holds afterwards, Version dominates every version the person
	// saw (see ResolveCounter), and Own, when set, is the vector of the
	// versions dropped (those it covers leave the conflicts list on every
	// peer); unset, it is Version.
	OpResolve Op = 8
	// OpConflict: concurrent versions of Path met; Meta is the winner every
	// peer picks by the same rule, Losers are kept aside under conflicts/.
	OpConflict Op = 9
	// OpRealize: the recorder now keeps Path's current version as a real
	// file (a pin); OpUnrealize: it no longer does (an unpin: the bytes
	// moved to its cache). Neither changes the path's version: other
	// peers learn from them who holds which bytes.
	OpRealize   Op = 10
	OpUnrealize Op = 11
)

var opNames = map[Op]string{
	OpAdd: "add", OpReplace: "replace", OpRemove: "remove", OpRename: "rename",
	OpMkdir: "mkdir", OpRmdir: "rmdir", OpSymlink: "symlink", OpResolve: "resolve",
	OpConflict: "conflict", OpRealize: "realize", OpUnrealize: "unrealize",
}

func (o Op) String() string {
	if s, ok := opNames[o]; ok {
		return s
	}
	return "op?"
}

// ParseOp is the inverse of Op.String.
func ParseOp(s string) (Op, bool) {
	for op, name := range opNames {
		if name == s {
			return op, true
		}
	}
	return 0, false
}

// Meta is what Realize records about the thing at a path: enough to recreate
// it on another peer and to tell whether the local copy changed. Bytes are
// named by Blob; their block map is stored once per blob (see BlockMap).
type Meta struct {
	Kind   Kind
	Size   int64  // bytes of a file; 0 otherwise
	MTime  int64  // modification time, Unix nanoseconds
	Exec   bool   // the only mode bit Realize carries (files only)
	Blob   Hash   // BLAKE3-256 of the file's bytes (files only)
	Target string // symlink target, verbatim, never followed
}

// Entry is one change in a peer's history of an arena. Entries are
// hash-chained: Prev is the hash of the canonical encoding of the entry
// before it (zero for the first one ever), so a log can be verified from any
// retained point back to a signed head.
type Entry struct {
	Seq     uint64        // position in this peer's log of this arena, from 1
	Time    int64         // when the peer recorded it, Unix nanoseconds
	Arena   ArenaName     // which arena
	Peer    PeerID        // whose log this entry belongs to (the recorder)
	Origin  PeerID        // who made the change (== Peer for local edits)
	Op      Op            // what happened
	Path    Path          // the path changed (the destination of a rename)
	From    Path          // the source of a rename; empty otherwise
	Meta    Meta          // the state of Path after the change
	Version VersionVector // causal version of Path after the change
	Prev    Hash          // hash of the previous entry in this log
	// Losers, for OpConflict, is the rest of the path's frontier: the
	// versions that lost (deletions included, so that every peer rebuilds
	// the same frontier), and Own is the winner's own version vector
	// (Version being the merge of the whole frontier). For OpResolve, Own
	// is the vector of the kept-aside versions the resolution drops.
	Losers []Alternative
	Own    VersionVector
	// FromVersion is, for OpRename, the version of From after the move
	// (its tombstone), so other peers can order the removal of From.
	FromVersion VersionVector
	// Unreal says the recorder holds Path's file as listed only, without
	// its bytes (they are on other peers or in its cache). False means it
	// keeps a real copy: the household's record of who holds what.
	Unreal bool
}

// Alternative is one version of a path: what it held, who made it, and
// its causal version. Conflict losers are alternatives.
type Alternative struct {
	Origin  PeerID
	Meta    Meta // Kind None: a deletion
	Version VersionVector
}

// When returns the entry's time as a time.Time.
func (e *Entry) When() time.Time { return time.Unix(0, e.Time) }

// Block is one content-defined piece of a blob. Offsets are implied by the
// order of blocks in a BlockMap.
type Block struct {
	Hash Hash
	Size uint32
}

// BlockMap lists the blocks of one blob, in order. The map of a blob is a
// pure function of its bytes and the chunker parameters (see real/chunk.go),
// so two peers that index the same bytes compute the same map.
type BlockMap []Block

// Signer signs on behalf of this peer. The private key never leaves the
// implementation; history signs its chain heads through it.
type Signer interface {
	ID() PeerID
	Sign(msg []byte) ([]byte, error)
}

// Clock is injected wherever time matters, so tests can control it.
type Clock interface {
	Now() time.Time
}

// SystemClock is the real wall clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }
