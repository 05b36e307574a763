package household

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/realizefs/realize"
)

// Small files are fetched many per request. Each is one block, and one
// stream per block cost more than the block: a stream's set-up and
// retirement (flow control credit, acknowledgements, the limit on
// concurrent streams) held a peer to one to three thousand files a second
// however small they were. Requests for block 0 of a blob gather in a
// batch per connection and arena; a batch goes out as one MsgBlobs request
// as soon as fewer than maxBlobBatches are in flight, so a lone request
// waits for nobody and a burst travels in a few requests.

// maxBlobBatches is how many MsgBlobs requests to one peer and arena are in
// flight at once.
const maxBlobBatches = 4

// blobBatchTimeout bounds one MsgBlobs request: it runs for all its
// callers, not under any one's context.
const blobBatchTimeout = time.Minute

// blobWait is one caller's request in a batch.
type blobWait struct {
	blob   realize.Hash
	done   chan struct{} // closed when the batch is over for this blob
	data   []byte        // the block, if served
	served bool
	err    error // the whole batch failed
}

// blobBatcher gathers the requests to one peer for one arena.
type blobBatcher struct {
	c     *Conn
	arena realize.ArenaName

	mu      sync.Mutex
	pending []*blobWait
	running int // batches in flight
}

// blobBatcher returns the connection's batcher for arena.
func (c *Conn) blobBatcher(arena realize.ArenaName) *blobBatcher {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.batchers == nil {
		c.batchers = map[realize.ArenaName]*blobBatcher{}
	}
	b := c.batchers[arena]
	if b == nil {
		b = &blobBatcher{c: c, arena: arena}
		c.batchers[arena] = b
	}
	return b
}

// get returns block 0 of blob, with served false if the peer did not
// serve it in a batch (the caller then asks for it alone).
func (b *blobBatcher) get(ctx context.Context, blob realize.Hash) ([]byte, bool, error) {
	w := &blobWait{blob: blob, done: make(chan struct{})}
	b.mu.Lock()
	b.pending = append(b.pending, w)
	lead := b.running < maxBlobBatches
	if lead {
		b.running++
	}
	b.mu.Unlock()
	if lead {
		b.send()
	}
	select {
	case <-w.done:
		return w.data, w.served, w.err
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
}

// send sends one batch of what is pending, then hands the rest (which
// gathered meanwhile) to a new goroutine, so the caller that sent it is
// not kept waiting for others.
func (b *blobBatcher) send() {
	b.mu.Lock()
	n := min(len(b.pending), MaxBlobsPerRequest)
	if n == 0 { // taken by the batch before
		b.running--
		b.mu.Unlock()
		return
	}
	batch := slices.Clone(b.pending[:n])
	b.pending = slices.Delete(b.pending, 0, n)
	b.mu.Unlock()
	b.fetch(batch)
	b.mu.Lock()
	more := len(b.pending) > 0
	if !more {
		b.running--
	}
	b.mu.Unlock()
	if more {
		go b.send()
	}
}

// fetch sends one MsgBlobs request and hands each waiter its block, or
// nothing (not served), or the batch's failure.
func (b *blobBatcher) fetch(batch []*blobWait) {
	ctx, cancel := context.WithTimeout(b.c.qc.Context(), blobBatchTimeout)
	defer cancel()
	q := &BlobsRequest{Arena: b.arena, Blobs: make([]realize.Hash, len(batch))}
	for i, w := range batch {
		q.Blobs[i] = w.blob
	}
	next := 0
	err := b.read(ctx, q, func(i int, data []byte) error {
		if i < next || i >= len(batch) {
			return fmt.Errorf("peer sent blob %d of %d after %d", i, len(batch), next)
		}
		w := batch[i]
		w.data, w.served = slices.Clone(data), true
		close(w.done)
		next = i + 1
		return nil
	})
	for _, w := range batch {
		if !w.served {
			w.err = err
			close(w.done)
		}
	}
}

func (b *blobBatcher) read(ctx context.Context, q *BlobsRequest, fn func(int, []byte) error) error {
	r, err := b.c.Stream(ctx, MsgBlobs, q)
	if err != nil {
		return err
	}
	defer r.Close()
	for {
		i, data, err := r.NextBlock()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(i, data); err != nil {
			return r.fail(err)
		}
	}
}
