package household

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// runAhead is how many blocks of a run are received ahead of the caller:
// while it verifies and writes one block, the next ones keep arriving.
const runAhead = 4

// received is one block read off a run's stream, or how the stream ended.
type received struct {
	index int
	data  []byte
	buf   []byte // the buffer data lives in, to hand back
	err   error
}

// readRun requests one run of blocks and calls fn with each, in order.
// The stream is read on a goroutine, up to runAhead blocks ahead of fn,
// through a fixed set of buffers.
func readRun(ctx context.Context, c *Conn, q *BlobRequest, fn func(int, []byte) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r, err := c.Stream(ctx, MsgBlocks, q)
	if err != nil {
		return err
	}
	free := make(chan []byte, runAhead+1)
	for range runAhead + 1 {
		free <- nil // buffers are made to the size of the first frame read into them
	}
	out := make(chan received, runAhead)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(out)
		for {
			var buf []byte
			select {
			case buf = <-free:
			case <-ctx.Done():
				return
			}
			i, data, buf, err := r.nextBlockInto(buf)
			select {
			case out <- received{index: i, data: data, buf: buf, err: err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	// Stop the stream (cancel), wait for the reader to let go of it, then
	// release it.
	defer func() { cancel(); <-done; r.Close() }()
	want := q.First
	for b := range out {
		if b.err != nil {
			if !errors.Is(b.err, io.EOF) {
				return b.err
			}
			if want != q.First+q.N {
				return fmt.Errorf("peer sent %d of %d blocks", want-q.First, q.N)
			}
			return nil
		}
		if b.index != want {
			return fmt.Errorf("peer sent block %d where %d was expected", b.index, want)
		}
		if err := fn(b.index, b.data); err != nil {
			return err
		}
		want++
		free <- b.buf
	}
	return ctx.Err()
}
