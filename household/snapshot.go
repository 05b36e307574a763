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
}

// heldSince is the protocol revision that has SnapshotFrame.Held.
const heldSince = 2

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
	withHeld := req.Conn().Version() >= heldSince
	var f SnapshotFrame
	err = a.Snapshot(func(sn real.Snap) error {
		rec := SnapRecord{Path: string(sn.Path)}
		for _, v := range sn.Frontier {
			rec.Versions = append(rec.Versions, toSnapVersion(v))
		}
		if sn.Held && withHeld {
			f.Held = append(f.Held, uint32(len(f.Records)))
		}
		f.Records = append(f.Records, rec)
		if len(f.Records) < snapshotBatch {
			return nil
		}
		err := w.Send(&f)
		f = SnapshotFrame{}
		return err
	})
	if err != nil || len(f.Records) == 0 {
		return err
	}
	return w.Send(&f)
}

func toSnapVersion(v realize.Alternative) SnapVersion {
	s := SnapVersion{Origin: v.Origin, Kind: uint8(v.Meta.Kind), Size: v.Meta.Size, MTime: v.Meta.MTime,
		Exec: v.Meta.Exec, Blob: v.Meta.Blob, Target: v.Meta.Target}
	for p, n := range v.Version {
		s.Version = append(s.Version, WireHead{Peer: p, Seq: n})
	}
	return s
}

// fromSnapVersion checks and converts one received version.
func fromSnapVersion(s SnapVersion) (realize.Alternative, error) {
	if s.Kind > uint8(realize.KindSymlink) || s.Size < 0 || len(s.Version) > 1024 {
		return realize.Alternative{}, errors.New("malformed version")
	}
	a := realize.Alternative{Origin: s.Origin, Meta: realize.Meta{Kind: realize.Kind(s.Kind), Size: s.Size,
		MTime: s.MTime, Exec: s.Exec, Blob: s.Blob, Target: s.Target}}
	a.Version = make(realize.VersionVector, len(s.Version))
	for _, c := range s.Version {
		a.Version[c.Peer] = c.Seq
	}
	return a, nil
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
		for i, rec := range f.Records {
			var versions []realize.Alternative
			for _, v := range rec.Versions {
				a, err := fromSnapVersion(v)
				if err != nil {
					return &realize.Error{Op: "snapshot", Kind: realize.Corrupt, Arena: arena, Path: rec.Path, Err: fmt.Errorf("peer sent a %w", err)}
				}
				versions = append(versions, a)
			}
			if err := fn(real.Snap{Path: realize.Path(rec.Path), Frontier: versions, Held: held[i]}); err != nil {
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
