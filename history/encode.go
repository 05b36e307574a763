package history

import (
	"bytes"
	"errors"
	"fmt"
	"sort"

	"github.com/fxamacker/cbor/v2"
	"github.com/realizefs/realize"
	"github.com/zeebo/blake3"
)

// Entries are stored, hashed and (later) sent as canonical CBOR (RFC 8949
// §4.2 core deterministic encoding): the same entry always encodes to the
// same bytes, so its hash is the same on every peer. Fields use small
// integer keys; the numbers are part of the format and are add-only.
type wireEntry struct {
	Seq     uint64            `cbor:"1,keyasint"`
	Time    int64             `cbor:"2,keyasint"`
	Arena   string            `cbor:"3,keyasint"`
	Peer    []byte            `cbor:"4,keyasint"`
	Origin  []byte            `cbor:"5,keyasint"`
	Op      uint8             `cbor:"6,keyasint"`
	Path    string            `cbor:"7,keyasint"`
	From    string            `cbor:"8,keyasint,omitempty"`
	Kind    uint8             `cbor:"9,keyasint"`
	Size    int64             `cbor:"10,keyasint,omitempty"`
	MTime   int64             `cbor:"11,keyasint,omitempty"`
	Exec    bool              `cbor:"12,keyasint,omitempty"`
	Blob    []byte            `cbor:"13,keyasint,omitempty"`
	Target  string            `cbor:"14,keyasint,omitempty"`
	Version []wireVersion     `cbor:"15,keyasint,omitempty"` // sorted by peer id: canonical
	Prev    []byte            `cbor:"16,keyasint"`
	Losers  []wireAlternative `cbor:"17,keyasint,omitempty"`
	FromV   []wireVersion     `cbor:"18,keyasint,omitempty"`
	Own     []wireVersion     `cbor:"19,keyasint,omitempty"`
	Unreal  bool              `cbor:"20,keyasint,omitempty"`
}

// wireAlternative is a conflict loser inside an entry.
type wireAlternative struct {
	_       struct{} `cbor:",toarray"`
	Origin  []byte
	Kind    uint8
	Size    int64
	MTime   int64
	Exec    bool
	Blob    []byte
	Target  string
	Version []wireVersion
}

// wireVersion is one version vector component. A vector travels as a list
// sorted by peer id rather than a map, because CBOR map keys that are raw
// 32-byte ids would have to be byte strings and the list is just as
// canonical and simpler to bound.
type wireVersion struct {
	_    struct{} `cbor:",toarray"`
	Peer []byte
	N    uint64
}

// Limits on decoded entries. An entry is small; anything bigger is an attack
// or corruption, and is refused before it is allocated.
const (
	MaxEntrySize   = 16 << 10 // bytes of one encoded entry
	MaxVersionLen  = 1024     // peers in one version vector
	MaxLosers      = 64       // alternatives in one conflict entry
	maxNestedLevel = 6
)

// Codec encodes and decodes entries. It holds the configured CBOR modes;
// building them once is both faster and keeps options in one place.
type Codec struct {
	enc cbor.EncMode
	dec cbor.DecMode
}

// NewCodec returns the canonical codec.
func NewCodec() *Codec {
	enc, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err) // static options: cannot fail
	}
	dec, err := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels:   maxNestedLevel,
		MaxArrayElements:  MaxVersionLen,
		MaxMapPairs:       MaxVersionLen,
		IndefLength:       cbor.IndefLengthForbidden,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return &Codec{enc: enc, dec: dec}
}

// Encode returns the canonical encoding of e.
func (c *Codec) Encode(e *realize.Entry) ([]byte, error) {
	w := wireEntry{
		Seq: e.Seq, Time: e.Time, Arena: string(e.Arena),
		Peer: e.Peer[:], Origin: e.Origin[:], Op: uint8(e.Op),
		Path: string(e.Path), From: string(e.From),
		Kind: uint8(e.Meta.Kind), Size: e.Meta.Size, MTime: e.Meta.MTime,
		Exec: e.Meta.Exec, Target: e.Meta.Target, Prev: e.Prev[:], Unreal: e.Unreal,
	}
	if !e.Meta.Blob.IsZero() {
		w.Blob = e.Meta.Blob[:]
	}
	w.Version = encodeVersion(e.Version)
	w.FromV = encodeVersion(e.FromVersion)
	w.Own = encodeVersion(e.Own)
	for _, a := range e.Losers {
		w.Losers = append(w.Losers, wireAlternative{Origin: a.Origin[:], Kind: uint8(a.Meta.Kind), Size: a.Meta.Size,
			MTime: a.Meta.MTime, Exec: a.Meta.Exec, Blob: a.Meta.Blob[:], Target: a.Meta.Target, Version: encodeVersion(a.Version)})
	}
	return c.enc.Marshal(&w)
}

func encodeVersion(v realize.VersionVector) []wireVersion {
	var out []wireVersion
	for p, n := range v {
		out = append(out, wireVersion{Peer: p[:], N: n})
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i].Peer, out[j].Peer) < 0 })
	return out
}

// Decode parses and validates one encoded entry. Everything that came from
// disk or from the network goes through here, so the checks that keep
// paths inside the arena live here too.
func (c *Codec) Decode(b []byte) (*realize.Entry, error) {
	if len(b) > MaxEntrySize {
		return nil, corrupt(fmt.Errorf("entry of %d bytes exceeds %d", len(b), MaxEntrySize))
	}
	var w wireEntry
	if err := c.dec.Unmarshal(b, &w); err != nil {
		return nil, corrupt(err)
	}
	e := &realize.Entry{
		Seq: w.Seq, Time: w.Time, Op: realize.Op(w.Op), Unreal: w.Unreal,
		Meta: realize.Meta{Kind: realize.Kind(w.Kind), Size: w.Size, MTime: w.MTime, Exec: w.Exec, Target: w.Target},
	}
	var err error
	if e.Arena, err = realize.ParseArenaName(w.Arena); err != nil {
		return nil, corrupt(err)
	}
	if e.Path, err = realize.ParsePath(w.Path); err != nil {
		return nil, corrupt(err)
	}
	if e.From, err = realize.ParsePath(w.From); err != nil {
		return nil, corrupt(err)
	}
	if err := copyFixed(e.Peer[:], w.Peer, "peer"); err != nil {
		return nil, err
	}
	if err := copyFixed(e.Origin[:], w.Origin, "origin"); err != nil {
		return nil, err
	}
	if err := copyFixed(e.Prev[:], w.Prev, "prev"); err != nil {
		return nil, err
	}
	if w.Blob != nil {
		if err := copyFixed(e.Meta.Blob[:], w.Blob, "blob"); err != nil {
			return nil, err
		}
	}
	if e.Version, err = decodeVersion(w.Version); err != nil {
		return nil, err
	}
	if e.FromVersion, err = decodeVersion(w.FromV); err != nil {
		return nil, err
	}
	if e.Own, err = decodeVersion(w.Own); err != nil {
		return nil, err
	}
	if len(w.Losers) > MaxLosers {
		return nil, corrupt(fmt.Errorf("%d conflict losers", len(w.Losers)))
	}
	for _, wa := range w.Losers {
		a := realize.Alternative{Meta: realize.Meta{Kind: realize.Kind(wa.Kind), Size: wa.Size, MTime: wa.MTime, Exec: wa.Exec, Target: wa.Target}}
		if err := copyFixed(a.Origin[:], wa.Origin, "loser origin"); err != nil {
			return nil, err
		}
		if err := copyFixed(a.Meta.Blob[:], wa.Blob, "loser blob"); err != nil {
			return nil, err
		}
		if a.Version, err = decodeVersion(wa.Version); err != nil {
			return nil, err
		}
		if a.Meta.Size < 0 || a.Meta.Kind > realize.KindSymlink {
			return nil, corrupt(errors.New("bad loser metadata"))
		}
		e.Losers = append(e.Losers, a)
	}
	if err := validate(e); err != nil {
		return nil, err
	}
	return e, nil
}

func decodeVersion(w []wireVersion) (realize.VersionVector, error) {
	if len(w) == 0 {
		return nil, nil
	}
	v := make(realize.VersionVector, len(w))
	for i, c := range w {
		var p realize.PeerID
		if err := copyFixed(p[:], c.Peer, "version peer"); err != nil {
			return nil, err
		}
		if i > 0 && bytes.Compare(w[i-1].Peer, c.Peer) >= 0 {
			return nil, corrupt(errors.New("version vector not sorted"))
		}
		v[p] = c.N
	}
	return v, nil
}

// validate checks what an entry's fields must agree on.
func validate(e *realize.Entry) error {
	if e.Seq == 0 {
		return corrupt(errors.New("sequence 0"))
	}
	if _, ok := opNamesValid[e.Op]; !ok {
		return corrupt(fmt.Errorf("unknown op %d", e.Op))
	}
	if e.Path.IsRoot() {
		return corrupt(errors.New("entry for the arena root"))
	}
	if (e.Op == realize.OpRename) != (e.From != "") {
		return corrupt(errors.New("rename without source, or source without rename"))
	}
	if (e.Op == realize.OpConflict) != (len(e.Losers) > 0) {
		return corrupt(errors.New("conflict without losers, or losers without conflict"))
	}
	if e.Meta.Size < 0 || e.Meta.Kind > realize.KindSymlink {
		return corrupt(errors.New("bad metadata"))
	}
	if e.Unreal && e.Meta.Kind != realize.KindFile {
		return corrupt(errors.New("only a file can be unreal"))
	}
	if (e.Op == realize.OpRealize || e.Op == realize.OpUnrealize) && (e.Meta.Kind != realize.KindFile || e.Unreal != (e.Op == realize.OpUnrealize)) {
		return corrupt(errors.New("realize or unrealize of something else than a file"))
	}
	return nil
}

var opNamesValid = map[realize.Op]struct{}{
	realize.OpAdd: {}, realize.OpReplace: {}, realize.OpRemove: {}, realize.OpRename: {},
	realize.OpMkdir: {}, realize.OpRmdir: {}, realize.OpSymlink: {}, realize.OpResolve: {},
	realize.OpConflict: {}, realize.OpRealize: {}, realize.OpUnrealize: {},
}

func copyFixed(dst, src []byte, what string) error {
	if len(src) != len(dst) {
		return corrupt(fmt.Errorf("%s: want %d bytes, got %d", what, len(dst), len(src)))
	}
	copy(dst, src)
	return nil
}

func corrupt(err error) error {
	return &realize.Error{Op: "decode history entry", Kind: realize.Corrupt, Err: err}
}

// HashOf returns the hash that names an encoded entry in the chain.
func HashOf(encoded []byte) realize.Hash {
	return realize.Hash(blake3.Sum256(encoded))
}
