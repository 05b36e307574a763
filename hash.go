package realize

import (
	"encoding/hex"
	"fmt"
)

// Hash is a BLAKE3-256 digest. It names blobs (whole file contents), blocks
// and history entries. It is shown as lowercase hex everywhere, so a blob
// hash compares directly with the output of b3sum.
type Hash [32]byte

// IsZero tells whether h is the zero hash (used as "none").
func (h Hash) IsZero() bool { return h == Hash{} }

// String returns h as 64 lowercase hex digits.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// Short returns the first 12 hex digits, for display.
func (h Hash) Short() string { return hex.EncodeToString(h[:6]) }

// MarshalText makes hashes appear as hex in JSON.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText parses 64 hex digits.
func (h *Hash) UnmarshalText(b []byte) error {
	v, err := ParseHash(string(b))
	if err != nil {
		return err
	}
	*h = v
	return nil
}

// ParseHash parses 64 hex digits.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 2*len(h) {
		return h, &Error{Op: "parse hash", Kind: Invalid, Err: fmt.Errorf("want %d hex digits, got %d", 2*len(h), len(s))}
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, &Error{Op: "parse hash", Kind: Invalid, Err: err}
	}
	return h, nil
}

// PeerID is a peer's ed25519 public key: its identity in the household.
type PeerID [32]byte

// String returns the key as 64 lowercase hex digits, the form `realize id`
// prints and `realize peer add` accepts.
func (p PeerID) String() string { return hex.EncodeToString(p[:]) }

// Short returns the first 8 hex digits, for display.
func (p PeerID) Short() string { return hex.EncodeToString(p[:4]) }

// IsZero tells whether p is unset.
func (p PeerID) IsZero() bool { return p == PeerID{} }

// MarshalText makes peer ids appear as hex in JSON.
func (p PeerID) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText parses 64 hex digits.
func (p *PeerID) UnmarshalText(b []byte) error {
	v, err := ParsePeerID(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// ParsePeerID parses 64 hex digits.
func ParsePeerID(s string) (PeerID, error) {
	var p PeerID
	if len(s) != 2*len(p) {
		return p, &Error{Op: "parse peer id", Kind: Invalid, Err: fmt.Errorf("want %d hex digits, got %d", 2*len(p), len(s))}
	}
	if _, err := hex.Decode(p[:], []byte(s)); err != nil {
		return p, &Error{Op: "parse peer id", Kind: Invalid, Err: err}
	}
	return p, nil
}

// Bytes returns the key as a slice (for bucket keys and crypto APIs).
func (p PeerID) Bytes() []byte { return p[:] }
