package realize

import (
	"bytes"
	"sort"
	"strings"
)

// VersionVector orders the versions of one path causally: for each peer
// that changed the path, the sequence number (in that peer's history of the
// arena) of its latest change. Using the history sequence as the counter
// makes every component unique and monotonic without a separate counter.
//
// A nil VersionVector is the empty version (nothing ever happened).
type VersionVector map[PeerID]uint64

// ResolveCounter is not a peer: it names the component of a version
// vector that counts the resolutions of a path that changed what it holds
// (`realize resolve --keep` of a version other than the one shown).
// Such a resolution's vector is the merge of every version it saw plus
// this counter one above theirs, the same whoever makes it: two people who
// resolve the same state of a path at once make the same version, which
// Decide settles by its ordinary rule instead of a new conflict. No
// ed25519 public key is all 0xff bytes (it is not a point encoding).
func ResolveCounter() PeerID {
	var p PeerID
	for i := range p {
		p[i] = 0xff
	}
	return p
}

// Order is the causal relation between two versions.
type Order int

const (
	Equal      Order = iota // same version
	Before                  // a happened before b: b supersedes a
	After                   // a happened after b: a supersedes b
	Concurrent              // neither saw the other: a conflict
)

func (o Order) String() string {
	return [...]string{"equal", "before", "after", "concurrent"}[o]
}

// Compare returns how a relates to b.
func (a VersionVector) Compare(b VersionVector) Order {
	aBigger, bBigger := false, false
	for p, n := range a {
		if m := b[p]; n > m {
			aBigger = true
		} else if n < m {
			bBigger = true
		}
	}
	for p, m := range b {
		if _, ok := a[p]; !ok && m > 0 {
			bBigger = true
		}
	}
	switch {
	case aBigger && bBigger:
		return Concurrent
	case aBigger:
		return After
	case bBigger:
		return Before
	}
	return Equal
}

// Clone returns an independent copy.
func (a VersionVector) Clone() VersionVector {
	if a == nil {
		return nil
	}
	c := make(VersionVector, len(a))
	for p, n := range a {
		c[p] = n
	}
	return c
}

// Merge returns the component-wise maximum of a and b.
func (a VersionVector) Merge(b VersionVector) VersionVector {
	c := a.Clone()
	if c == nil {
		c = make(VersionVector, len(b))
	}
	for p, n := range b {
		if n > c[p] {
			c[p] = n
		}
	}
	return c
}

// With returns a copy of a whose component for p is n.
func (a VersionVector) With(p PeerID, n uint64) VersionVector {
	c := a.Clone()
	if c == nil {
		c = make(VersionVector, 1)
	}
	c[p] = n
	return c
}

// String renders the vector as "peer:n,peer:n" with short peer ids, sorted.
func (a VersionVector) String() string {
	peers := make([]PeerID, 0, len(a))
	for p := range a {
		peers = append(peers, p)
	}
	sort.Slice(peers, func(i, j int) bool { return bytes.Compare(peers[i][:], peers[j][:]) < 0 })
	var b strings.Builder
	for i, p := range peers {
		if i > 0 {
			b.WriteByte(',')
		}
		if p == ResolveCounter() {
			b.WriteString("resolve")
		} else {
			b.WriteString(p.Short())
		}
		b.WriteByte(':')
		b.WriteString(uitoa(a[p]))
	}
	return b.String()
}

func uitoa(n uint64) string {
	var buf [20]byte
	i := len(buf)
	for {
		i--
		buf[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(buf[i:])
		}
	}
}
