package household

import (
	"context"
	"errors"
	"time"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/history"
	"github.com/realizefs/realize/internal/store"
	"github.com/realizefs/realize/real"
	bolt "go.etcd.io/bbolt"
)

// History exchange and block transfer (docs/protocol.md). Every handler
// first checks that the arena is shared with the asking peer: enforcement
// is on the serving side.
const (
	MsgLogs     MsgType = 0x0010 // which logs of an arena a peer holds, and their heads
	MsgPage     MsgType = 0x0011 // a verified page of one log
	MsgWatch    MsgType = 0x0012 // heads, pushed again whenever a log of the arena grows
	MsgBlockMap MsgType = 0x0013 // a blob's block map
	MsgBlocks   MsgType = 0x0014 // a run of a blob's blocks
	MsgAck      MsgType = 0x0015 // how far the caller has stored each log
	MsgBlobs    MsgType = 0x0017 // the first block of each of several blobs (revision 2)
)

// Size limits of the sync messages (each frame, both directions).
const (
	logsFrameSize   = 256 << 10                 // up to ~4000 logs
	pageFrameSize   = MaxFrameSize              // history.MaxPageEntries entries of at most 16 KiB
	mapFrameSize    = MaxFrameSize              // 36 bytes a block: a ~100 GiB file
	blocksFrameSize = real.BlockMax + (1 << 10) // one block and its header
	// MaxBlocksPerRequest bounds a MsgBlocks request to a peer of
	// revision 1; from revision 2 a run may be as long as the blob.
	MaxBlocksPerRequest = 64
	// MaxBlobsPerRequest bounds a MsgBlobs request.
	MaxBlobsPerRequest = 256
	// blobsBuffer is how much of a MsgBlobs response is written at once.
	blobsBuffer = 256 << 10
)

// LogsRequest asks for the logs of an arena (MsgLogs, MsgWatch); with Logs
// set (MsgAck) it tells how far the caller has stored each one.
type LogsRequest struct {
	Arena realize.ArenaName `cbor:"1,keyasint"`
	Logs  []WireHead        `cbor:"2,keyasint,omitempty"`
}

// LogsResponse lists logs by author with their head sequence numbers.
type LogsResponse struct {
	Logs []WireHead `cbor:"1,keyasint"`
}

// WireHead is one log's author and head.
type WireHead struct {
	_    struct{}       `cbor:",toarray"`
	Peer realize.PeerID `cbor:"1,keyasint"`
	Seq  uint64         `cbor:"2,keyasint"`
}

// PageRequest asks for entries of one log from From on.
type PageRequest struct {
	Arena  realize.ArenaName `cbor:"1,keyasint"`
	Author realize.PeerID    `cbor:"2,keyasint"`
	From   uint64            `cbor:"3,keyasint"`
}

// PageResponse carries a page (no entries: nothing new).
type PageResponse struct {
	Entries [][]byte `cbor:"1,keyasint,omitempty"`
	Head    []byte   `cbor:"2,keyasint,omitempty"`
}

// BlobRequest asks about one blob of an arena (MsgBlockMap, MsgBlocks).
type BlobRequest struct {
	Arena realize.ArenaName `cbor:"1,keyasint"`
	Blob  realize.Hash      `cbor:"2,keyasint"`
	First int               `cbor:"3,keyasint,omitempty"`
	N     int               `cbor:"4,keyasint,omitempty"`
}

// BlobsRequest asks for the first block of each of several blobs of an
// arena (MsgBlobs): the whole content of files of one block, many per
// request. The response is one BlockFrame per blob served, in the order
// asked, its Index the blob's position in Blobs; a blob the peer cannot
// serve is left out (the caller asks for it alone to learn why).
type BlobsRequest struct {
	Arena realize.ArenaName `cbor:"1,keyasint"`
	Blobs []realize.Hash    `cbor:"2,keyasint"`
}

// BlockMapResponse is a blob's block map.
type BlockMapResponse struct {
	Blocks []WireBlock `cbor:"1,keyasint"`
}

// WireBlock is one entry of a block map.
type WireBlock struct {
	_    struct{}     `cbor:",toarray"`
	Hash realize.Hash `cbor:"1,keyasint"`
	Size uint32       `cbor:"2,keyasint"`
}

// BlockFrame is one block of a MsgBlocks response stream.
type BlockFrame struct {
	Index int    `cbor:"1,keyasint"`
	Data  []byte `cbor:"2,keyasint"`
}

// arenaRequest is a request about one arena.
type arenaRequest interface{ arena() realize.ArenaName }

func (q *LogsRequest) arena() realize.ArenaName  { return q.Arena }
func (q *PageRequest) arena() realize.ArenaName  { return q.Arena }
func (q *BlobRequest) arena() realize.ArenaName  { return q.Arena }
func (q *BlobsRequest) arena() realize.ArenaName { return q.Arena }

// decodeShared decodes a request and checks that its arena is shared with
// the caller — the first thing every sync handler does, before it reads
// anything of the arena.
func decodeShared(req *Request, q arenaRequest) error {
	if err := req.Decode(q); err != nil {
		return err
	}
	return req.RequireArena(q.arena())
}

// SyncData is what the sync handlers serve from.
type SyncData struct {
	DB    *store.DB
	Log   *history.Log
	Arena func(realize.ArenaName) *real.Arena // nil: not indexed here
}

// RegisterSync registers the history and block handlers on m.
func RegisterSync(m *Mux, d *SyncData) error {
	for _, r := range []struct {
		t    MsgType
		size int
		h    HandlerFunc
	}{
		{MsgLogs, logsFrameSize, d.serveLogs},
		{MsgPage, pageFrameSize, d.servePage},
		{MsgWatch, logsFrameSize, d.serveWatch},
		{MsgBlockMap, mapFrameSize, d.serveBlockMap},
		{MsgBlocks, blocksFrameSize, d.serveBlocks},
		{MsgBlobs, blocksFrameSize, d.serveBlobs},
		{MsgAck, logsFrameSize, d.serveAck},
		{MsgSnapshot, snapshotFrameSize, d.serveSnapshot},
	} {
		if err := m.Register(r.t, r.size, r.h); err != nil {
			return err
		}
	}
	return nil
}

func (d *SyncData) heads(arena realize.ArenaName) ([]WireHead, error) {
	var heads []history.LogHead
	err := d.DB.View(func(tx *bolt.Tx) (err error) {
		heads, err = d.Log.Heads(tx, arena)
		return err
	})
	out := make([]WireHead, len(heads))
	for i, h := range heads {
		out[i] = WireHead{Peer: h.Peer, Seq: h.Seq}
	}
	return out, err
}

func (d *SyncData) serveLogs(_ context.Context, _ realize.PeerID, req *Request, w *ResponseWriter) error {
	var q LogsRequest
	if err := decodeShared(req, &q); err != nil {
		return err
	}
	heads, err := d.heads(q.Arena)
	if err != nil {
		return err
	}
	return w.Send(&LogsResponse{Logs: heads})
}

func (d *SyncData) servePage(_ context.Context, _ realize.PeerID, req *Request, w *ResponseWriter) error {
	var q PageRequest
	if err := decodeShared(req, &q); err != nil {
		return err
	}
	var p *history.Page
	if err := d.DB.View(func(tx *bolt.Tx) (err error) { p, err = d.Log.ReadPage(tx, q.Arena, q.Author, q.From); return err }); err != nil {
		return err
	}
	if p == nil {
		return w.Send(&PageResponse{})
	}
	return w.Send(&PageResponse{Entries: p.Entries, Head: p.Head})
}

// watchHeartbeat resends the heads now and then even without a change, so
// a client notices a silently dead stream without waiting for the idle
// timeout.
const watchHeartbeat = 20 * time.Second

// serveWatch sends the arena's heads, then again each time a log of the
// arena grows, until the client goes away.
func (d *SyncData) serveWatch(ctx context.Context, _ realize.PeerID, req *Request, w *ResponseWriter) error {
	var q LogsRequest
	if err := decodeShared(req, &q); err != nil {
		return err
	}
	for {
		changed := d.Log.Changed(q.Arena) // before reading, so no change slips between
		heads, err := d.heads(q.Arena)
		if err != nil {
			return err
		}
		if err := w.Send(&LogsResponse{Logs: heads}); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-time.After(watchHeartbeat):
		}
		if err := req.RequireArena(q.Arena); err != nil {
			return err // no longer shared (config changed)
		}
	}
}

func (d *SyncData) arena(name realize.ArenaName) (*real.Arena, error) {
	if a := d.Arena(name); a != nil {
		return a, nil
	}
	return nil, &realize.Error{Op: "serve blocks", Kind: realize.NotExist, Arena: name, Err: errors.New("arena not indexed here")}
}

func (d *SyncData) serveBlockMap(_ context.Context, _ realize.PeerID, req *Request, w *ResponseWriter) error {
	var q BlobRequest
	if err := decodeShared(req, &q); err != nil {
		return err
	}
	a, err := d.arena(q.Arena)
	if err != nil {
		return err
	}
	bm, err := a.BlockMap(q.Blob)
	if err != nil {
		return err
	}
	resp := &BlockMapResponse{Blocks: make([]WireBlock, len(bm))}
	for i, b := range bm {
		resp.Blocks[i] = WireBlock{Hash: b.Hash, Size: b.Size}
	}
	return w.Send(resp)
}

func (d *SyncData) serveBlocks(ctx context.Context, _ realize.PeerID, req *Request, w *ResponseWriter) error {
	var q BlobRequest
	if err := decodeShared(req, &q); err != nil {
		return err
	}
	if q.N <= 0 {
		return &realize.Error{Op: "serve blocks", Kind: realize.Invalid, Arena: q.Arena, Err: errors.New("no blocks asked for")}
	}
	a, err := d.arena(q.Arena)
	if err != nil {
		return err
	}
	return a.ReadBlocks(ctx, q.Blob, q.First, q.N, func(i int, data []byte) error {
		return w.SendBlock(i, data)
	})
}

func (d *SyncData) serveBlobs(ctx context.Context, _ realize.PeerID, req *Request, w *ResponseWriter) error {
	var q BlobsRequest
	if err := decodeShared(req, &q); err != nil {
		return err
	}
	if len(q.Blobs) == 0 || len(q.Blobs) > MaxBlobsPerRequest {
		return &realize.Error{Op: "serve blobs", Kind: realize.Invalid, Arena: q.Arena, Err: errors.New("1 to 256 blobs per request")}
	}
	a, err := d.arena(q.Arena)
	if err != nil {
		return err
	}
	w.Buffer(blobsBuffer)
	for i, blob := range q.Blobs {
		sent := false
		err := a.ReadBlocks(ctx, blob, 0, 1, func(_ int, data []byte) error {
			sent = true
			return w.SendBlock(i, data)
		})
		switch {
		case sent && err != nil:
			return err // the stream failed
		case ctx.Err() != nil:
			return ctx.Err()
		}
		// A blob not here (or changed, or unreadable) is left out.
	}
	return nil
}

// serveAck records how far the caller has stored the arena's logs, and
// that it was heard from (history.Log.Heard: a peer silent for longer than
// history.inactive_after stops holding back trimming).
func (d *SyncData) serveAck(_ context.Context, peer realize.PeerID, req *Request, w *ResponseWriter) error {
	var q LogsRequest
	if err := decodeShared(req, &q); err != nil {
		return err
	}
	return d.DB.Update(func(tx *bolt.Tx) error {
		// An ack is the peer's sign of life that trimming goes by.
		if err := d.Log.Heard(tx, peer); err != nil {
			return err
		}
		for _, h := range q.Logs {
			if err := d.Log.SetAck(tx, q.Arena, peer, h.Peer, h.Seq); err != nil {
				return err
			}
		}
		return nil
	})
}
