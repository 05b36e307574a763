package household

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/real"
)

// MsgSnapshot streams an arena's index: every path with its frontier. A
// peer whose copy of a log was trimmed away at the source catches up from
// it (docs/protocol.md, "Catch-up").
const MsgSnapshot MsgType = 0x0016

// snapshotFrameSize bounds one frame of a snapshot stream.
const snapshotFrameSize = 4 << 20

// snapshotBatch is the number of paths per frame.
const snapshotBatch = 256

// SnapshotFrame carries a batch of paths.
type SnapshotFrame struct {
	Records []SnapRecord `cbor:"1,keyasint"`
	// Held lists, in increasing order, the indices in Records of the paths
	// whose shown version the sender keeps real (revision 2): a peer
	// catching up on the sender's own log learns from it what the sender
	// holds, which the trimmed entries would have said.
	Held []uint32 `cbor:"2,keyasint,omitempty"`
	// Conflicts carries, in increasing order of their index in Records,
	// the conflict bookkeeping of paths that have any (revision 2): the
	// versions kept aside with the decisions that named them, the drop
	// vectors of resolutions and the wins of versions shown again
	// (real.ConflictState). The trimmed entries would have said it; a
	// path with bookkeeping but no record comes with no versions.
	Conflicts []SnapConflicts `cbor:"3,keyasint,omitempty"`
}

// heldSince is the protocol revision that has SnapshotFrame.Held and
// SnapshotFrame.Conflicts.
const heldSince = 2

// SnapConflicts is one path's conflict bookkeeping.
type SnapConflicts struct {
	_     struct{}     `cbor:",toarray"`
	Index uint32       `cbor:"1,keyasint"` // into Records
	Kept  []SnapKept   `cbor:"2,keyasint"`
	Drops [][]WireHead `cbor:"3,keyasint"`
	Wins  []SnapWin    `cbor:"4,keyasint"`
}

// SnapKept is a version kept aside and the merged vectors of the
// decisions that named it a loser.
type SnapKept struct {
	_       struct{}     `cbor:",toarray"`
	Version SnapVersion  `cbor:"1,keyasint"`
	Named   [][]WireHead `cbor:"2,keyasint"`
}

// SnapWin is a version shown again (origin, blob, own vector) and the
// merged vectors of the decisions that showed it.
type SnapWin struct {
	_      struct{}       `cbor:",toarray"`
	Origin realize.PeerID `cbor:"1,keyasint"`
	Blob   realize.Hash   `cbor:"2,keyasint"`
	Own    []WireHead     `cbor:"3,keyasint"`
	At     [][]WireHead   `cbor:"4,keyasint"`
}

// maxSnapMarks bounds each list of one path's bookkeeping in a frame.
const maxSnapMarks = 1024

// SnapRecord is one path and its frontier.
type SnapRecord struct {
	_        struct{}      `cbor:",toarray"`
	Path     string        `cbor:"1,keyasint"`
	Versions []SnapVersion `cbor:"2,keyasint"`
}

// SnapVersion is one version of a path.
type SnapVersion struct {
	_       struct{}       `cbor:",toarray"`
	Origin  realize.PeerID `cbor:"1,keyasint"`
	Kind    uint8          `cbor:"2,keyasint"`
	Size    int64          `cbor:"3,keyasint"`
	MTime   int64          `cbor:"4,keyasint"`
	Exec    bool           `cbor:"5,keyasint"`
	Blob    realize.Hash   `cbor:"6,keyasint"`
	Target  string         `cbor:"7,keyasint"`
	Version []WireHead     `cbor:"8,keyasint"` // peer, counter
}

func (d *SyncData) serveSnapshot(_ context.Context, _ realize.PeerID, req *Request, w *ResponseWriter) error {
	var q LogsRequest
	if err := decodeShared(req, &q); err != nil {
		return err
	}
	a, err := d.arena(q.Arena)
	if err != nil {
		return err
	}
	rev2 := req.Conn().Version() >= heldSince
	var f SnapshotFrame
	size := 0 // roughly, of f encoded
	err = a.Snapshot(func(sn real.Snap) error {
		if len(sn.Frontier) == 0 && !rev2 {
			return nil // bookkeeping only: nothing for a revision 1 peer
		}
		rec := SnapRecord{Path: string(sn.Path)}
		for _, v := range sn.Frontier {
			rec.Versions = append(rec.Versions, toSnapVersion(v))
		}
		if sn.Held && rev2 {
			f.Held = append(f.Held, uint32(len(f.Records)))
		}
		size += len(rec.Path) + versionsSize(sn.Frontier)
		if !sn.Conflicts.Empty() && rev2 {
			f.Conflicts = append(f.Conflicts, toSnapConflicts(uint32(len(f.Records)), sn.Conflicts))
			size += conflictsSize(sn.Conflicts)
		}
		f.Records = append(f.Records, rec)
		if len(f.Records) < snapshotBatch && size < snapshotFrameSize/2 {
			return nil
		}
		err := w.Send(&f)
		f, size = SnapshotFrame{}, 0
		return err
	})
	if err != nil || len(f.Records) == 0 {
		return err
	}
	return w.Send(&f)
}

// Sizes, roughly, of things in a frame: a vector component (peer id and
// counter) and the rest of a version.
const (
	componentSize = 32 + 12
	versionSize   = 32 + 100 + 2*32
)

func versionsSize(vs []realize.Alternative) int {
	n := 0
	for _, v := range vs {
		n += versionSize + len(v.Meta.Target) + componentSize*len(v.Version)
	}
	return n
}

func vectorsSize(vs []realize.VersionVector) int {
	n := 0
	for _, v := range vs {
		n += 4 + componentSize*len(v)
	}
	return n
}

// conflictsSize is roughly what a path's bookkeeping adds to a frame:
// the frame limit must hold whatever a path holds, so a frame is sent
// once half full.
func conflictsSize(s *real.ConflictState) int {
	n := vectorsSize(s.Drops)
	for _, k := range s.Kept {
		n += versionsSize([]realize.Alternative{k.Alternative}) + vectorsSize(k.Named)
	}
	for _, w := range s.Wins {
		n += 2*32 + componentSize*len(w.Own) + vectorsSize(w.At)
	}
	return n
}

func toSnapVersion(v realize.Alternative) SnapVersion {
	return SnapVersion{Origin: v.Origin, Kind: uint8(v.Meta.Kind), Size: v.Meta.Size, MTime: v.Meta.MTime,
		Exec: v.Meta.Exec, Blob: v.Meta.Blob, Target: v.Meta.Target, Version: toWireVector(v.Version)}
}

func toWireVector(v realize.VersionVector) []WireHead {
	var out []WireHead
	for p, n := range v {
		out = append(out, WireHead{Peer: p, Seq: n})
	}
	return out
}

func toWireVectors(vs []realize.VersionVector) [][]WireHead {
	out := make([][]WireHead, len(vs))
	for i, v := range vs {
		out[i] = toWireVector(v)
	}
	return out
}

// fromSnapVersion checks and converts one received version.
func fromSnapVersion(s SnapVersion) (realize.Alternative, error) {
	if s.Kind > uint8(realize.KindSymlink) || s.Size < 0 {
		return realize.Alternative{}, errors.New("malformed version")
	}
	a := realize.Alternative{Origin: s.Origin, Meta: realize.Meta{Kind: realize.Kind(s.Kind), Size: s.Size,
		MTime: s.MTime, Exec: s.Exec, Blob: s.Blob, Target: s.Target}}
	var err error
	a.Version, err = fromWireVector(s.Version)
	return a, err
}

func fromWireVector(w []WireHead) (realize.VersionVector, error) {
	if len(w) > 1024 {
		return nil, errors.New("malformed version")
	}
	v := make(realize.VersionVector, len(w))
	for _, c := range w {
		v[c.Peer] = c.Seq
	}
	return v, nil
}

func fromWireVectors(ws [][]WireHead) ([]realize.VersionVector, error) {
	if len(ws) > maxSnapMarks {
		return nil, errors.New("too many vectors")
	}
	out := make([]realize.VersionVector, len(ws))
	for i, w := range ws {
		v, err := fromWireVector(w)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

func toSnapConflicts(i uint32, s *real.ConflictState) SnapConflicts {
	out := SnapConflicts{Index: i, Drops: toWireVectors(s.Drops)}
	for _, k := range s.Kept {
		out.Kept = append(out.Kept, SnapKept{Version: toSnapVersion(k.Alternative), Named: toWireVectors(k.Named)})
	}
	for _, w := range s.Wins {
		out.Wins = append(out.Wins, SnapWin{Origin: w.Origin, Blob: w.Blob, Own: toWireVector(w.Own), At: toWireVectors(w.At)})
	}
	return out
}

// conflictStates checks a frame's Conflicts (increasing indices within
// Records, bounded lists, well-formed versions) and converts them, by
// index.
func conflictStates(f SnapshotFrame) (map[int]*real.ConflictState, error) {
	out := make(map[int]*real.ConflictState, len(f.Conflicts))
	prev := -1
	for _, c := range f.Conflicts {
		if int(c.Index) <= prev || int(c.Index) >= len(f.Records) || len(c.Kept) > maxSnapMarks || len(c.Wins) > maxSnapMarks {
			return nil, fmt.Errorf("peer sent conflicts of record %d of %d", c.Index, len(f.Records))
		}
		prev = int(c.Index)
		s, err := fromSnapConflicts(c)
		if err != nil {
			return nil, err
		}
		out[int(c.Index)] = s
	}
	return out, nil
}

func fromSnapConflicts(c SnapConflicts) (*real.ConflictState, error) {
	s := &real.ConflictState{}
	var err error
	if s.Drops, err = fromWireVectors(c.Drops); err != nil {
		return nil, err
	}
	for _, k := range c.Kept {
		a, err := fromSnapVersion(k.Version)
		if err != nil {
			return nil, err
		}
		kept := real.Conflict{Alternative: a}
		if kept.Named, err = fromWireVectors(k.Named); err != nil {
			return nil, err
		}
		s.Kept = append(s.Kept, kept)
	}
	for _, w := range c.Wins {
		win := real.Win{Origin: w.Origin, Blob: w.Blob}
		if win.Own, err = fromWireVector(w.Own); err != nil {
			return nil, err
		}
		if win.At, err = fromWireVectors(w.At); err != nil {
			return nil, err
		}
		s.Wins = append(s.Wins, win)
	}
	return s, nil
}

// Snapshot asks the peer for its index of arena and calls fn with every
// path and frontier. Paths are validated by the caller before use.
func (s PeerSource) Snapshot(ctx context.Context, arena realize.ArenaName, fn func(real.Snap) error) error {
	r, err := s.Conn.Stream(ctx, MsgSnapshot, &LogsRequest{Arena: arena})
	if err != nil {
		return err
	}
	defer r.Close()
	for {
		var f SnapshotFrame
		if err := r.Next(&f); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		held, err := heldSet(f)
		if err != nil {
			return &realize.Error{Op: "snapshot", Kind: realize.Corrupt, Arena: arena, Err: err}
		}
		conflicts, err := conflictStates(f)
		if err != nil {
			return &realize.Error{Op: "snapshot", Kind: realize.Corrupt, Arena: arena, Err: err}
		}
		for i, rec := range f.Records {
			var versions []realize.Alternative
			for _, v := range rec.Versions {
				a, err := fromSnapVersion(v)
				if err != nil {
					return &realize.Error{Op: "snapshot", Kind: realize.Corrupt, Arena: arena, Path: rec.Path, Err: fmt.Errorf("peer sent a %w", err)}
				}
				versions = append(versions, a)
			}
			if err := fn(real.Snap{Path: realize.Path(rec.Path), Frontier: versions, Held: held[i], Conflicts: conflicts[i]}); err != nil {
				return err
			}
		}
	}
}

// heldSet checks a frame's Held indices (increasing, within Records) and
// returns them as a set.
func heldSet(f SnapshotFrame) (map[int]bool, error) {
	held := make(map[int]bool, len(f.Held))
	prev := -1
	for _, i := range f.Held {
		if int(i) <= prev || int(i) >= len(f.Records) {
			return nil, fmt.Errorf("peer sent held index %d of %d records", i, len(f.Records))
		}
		held[int(i)] = true
		prev = int(i)
	}
	return held, nil
}

// Peer is the peer this source asks.
func (s PeerSource) Peer() realize.PeerID { return s.Conn.Peer() }
