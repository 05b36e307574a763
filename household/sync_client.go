package household

import (
	"context"
	"errors"
	"io"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/history"
)

// PeerSource is one connected peer's offer of history; it has the methods
// of consensus.LogSource.
type PeerSource struct{ Conn *Conn }

// Logs asks the peer which logs of arena it holds.
func (s PeerSource) Logs(ctx context.Context, arena realize.ArenaName) ([]history.LogHead, error) {
	var resp LogsResponse
	if err := s.Conn.Call(ctx, MsgLogs, &LogsRequest{Arena: arena}, &resp); err != nil {
		return nil, err
	}
	return heads(resp), nil
}

func heads(resp LogsResponse) []history.LogHead {
	out := make([]history.LogHead, len(resp.Logs))
	for i, h := range resp.Logs {
		out[i] = history.LogHead{Peer: h.Peer, Seq: h.Seq}
	}
	return out
}

// Page asks the peer for a page of a log. The page is verified by whoever
// stores it (history.AppendRemote), not here: a relay is not trusted.
func (s PeerSource) Page(ctx context.Context, arena realize.ArenaName, author realize.PeerID, from uint64) (*history.Page, error) {
	var resp PageResponse
	if err := s.Conn.Call(ctx, MsgPage, &PageRequest{Arena: arena, Author: author, From: from}, &resp); err != nil {
		return nil, err
	}
	if len(resp.Entries) == 0 {
		return nil, nil
	}
	return &history.Page{Arena: arena, Peer: author, Entries: resp.Entries, Head: resp.Head}, nil
}

// Watch calls fn with the peer's heads for arena at once and again each
// time one of its logs grows, until ctx ends, the stream fails or fn
// returns an error.
func (s PeerSource) Watch(ctx context.Context, arena realize.ArenaName, fn func([]history.LogHead) error) error {
	r, err := s.Conn.Stream(ctx, MsgWatch, &LogsRequest{Arena: arena})
	if err != nil {
		return err
	}
	defer r.Close()
	for {
		var resp LogsResponse
		if err := r.Next(&resp); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if err := fn(heads(resp)); err != nil {
			return err
		}
	}
}

// Ack tells the peer how far this peer has stored each log of arena.
func (s PeerSource) Ack(ctx context.Context, arena realize.ArenaName, stored []history.LogHead) error {
	req := &LogsRequest{Arena: arena}
	for _, h := range stored {
		req.Logs = append(req.Logs, WireHead{Peer: h.Peer, Seq: h.Seq})
	}
	return s.Conn.Call(ctx, MsgAck, req, nil)
}

// Blocks fetches blocks from connected peers; it has the methods of
// consensus.BlockSource.
type Blocks struct{ Host *Host }

// Sources lists the connected peers that share arena with us.
func (b Blocks) Sources(arena realize.ArenaName) []realize.PeerID {
	var out []realize.PeerID
	for _, st := range b.Host.Status() {
		if !st.Connected {
			continue
		}
		if c, ok := b.Host.Conn(st.ID); ok && c.RequireArena(arena) == nil {
			out = append(out, st.ID)
		}
	}
	return out
}

func (b Blocks) conn(peer realize.PeerID) (*Conn, error) {
	c, ok := b.Host.Conn(peer)
	if !ok {
		return nil, &realize.Error{Op: "fetch", Kind: realize.Unavailable, Peer: peer, Err: errors.New("not connected")}
	}
	return c, nil
}

// BlockMap asks a peer for a blob's block map.
func (b Blocks) BlockMap(ctx context.Context, peer realize.PeerID, arena realize.ArenaName, blob realize.Hash) (realize.BlockMap, error) {
	c, err := b.conn(peer)
	if err != nil {
		return nil, err
	}
	var resp BlockMapResponse
	if err := c.Call(ctx, MsgBlockMap, &BlobRequest{Arena: arena, Blob: blob}, &resp); err != nil {
		return nil, err
	}
	bm := make(realize.BlockMap, len(resp.Blocks))
	for i, w := range resp.Blocks {
		bm[i] = realize.Block{Hash: w.Hash, Size: w.Size}
	}
	return bm, nil
}

// ReadBlocks asks a peer for blocks first..first+n-1 and calls fn with
// each, in order; data is valid until fn returns. A peer of revision 2 or
// later gets one request for the whole run, an older one requests of at
// most MaxBlocksPerRequest. Block 0 alone (the whole of a small file) is
// asked of a peer of revision 2 together with other such requests, in
// one MsgBlobs request (blobs.go). The caller verifies every block.
func (b Blocks) ReadBlocks(ctx context.Context, peer realize.PeerID, arena realize.ArenaName, blob realize.Hash, first, n int, fn func(int, []byte) error) error {
	c, err := b.conn(peer)
	if err != nil {
		return err
	}
	if first == 0 && n == 1 && c.Version() >= revisionBulk {
		data, served, err := c.blobBatcher(arena).get(ctx, blob)
		if served {
			return fn(0, data)
		}
		if ctx.Err() != nil {
			return c.streamError(ctx, "call "+MsgBlobs.String(), err)
		}
		// Not served in a batch: ask alone, which says why.
	}
	per := MaxBlocksPerRequest
	if c.Version() >= revisionBulk {
		per = n
	}
	for n > 0 {
		k := min(n, per)
		if err := readRun(ctx, c, &BlobRequest{Arena: arena, Blob: blob, First: first, N: k}, fn); err != nil {
			return err
		}
		first, n = first+k, n-k
	}
	return nil
}
