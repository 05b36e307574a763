package store

import "encoding/binary"

// Keys are big-endian so that bbolt's byte order is numeric order: a cursor
// walks history entries by sequence number.

// PutUint writes v big-endian into b[:8].
func PutUint(b []byte, v uint64) { binary.BigEndian.PutUint64(b, v) }

// Uint reads a big-endian uint64 from b[:8].
func Uint(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

// SeqKey returns the 8-byte key for sequence number v.
func SeqKey(v uint64) []byte {
	b := make([]byte, 8)
	PutUint(b, v)
	return b
}

// AppendFill is the fill percent for buckets whose keys arrive in
// increasing order (logs, an index written by a sorted scan): bbolt splits
// a full page at half by default, which leaves an append-only bucket half
// empty for good. A page rewritten later in the middle may still split.
const AppendFill = 0.95
