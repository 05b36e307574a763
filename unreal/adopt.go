package unreal

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"syscall"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/real"
)

// Adopt moves the file at path, which holds exactly blob (size bytes, cut
// into blocks; nil blocks for a blob of at most one block), into the cache
// by renaming it: no byte is copied, and every block is present. It is how
// unpin frees a real file while keeping it readable. path must be on the
// file system of the cache directory: a cross-device rename fails with
// Kind Unsupported and leaves the file where it is.
//
// The bytes are not re-hashed here (that would read the whole file); like
// every cached block they are verified when read.
func (c *Cache) Adopt(blob realize.Hash, size int64, blocks realize.BlockMap, path string) error {
	const op = "adopt into cache"
	if blocks == nil && size > 0 && size <= real.OneBlockMax {
		blocks = realize.BlockMap{{Hash: blob, Size: uint32(size)}}
	}
	if err := checkBlockMap(blob, blocks, size); err != nil {
		return &realize.Error{Op: op, Kind: realize.Invalid, Path: path, Err: err}
	}
	info, err := os.Lstat(path)
	if err != nil {
		return &realize.Error{Op: op, Kind: osKind(err), Path: path, Err: err}
	}
	if !info.Mode().IsRegular() || info.Size() != size {
		return &realize.Error{Op: op, Kind: realize.Invalid, Path: path,
			Err: fmt.Errorf("not a regular file of %d bytes", size)}
	}
	b, err := c.adoptInto(blob, size, blocks, path)
	if err != nil {
		return err
	}
	syncDir(c.dir)
	if err := c.writeRecord(b); err != nil {
		return &realize.Error{Op: op, Kind: realize.IO, Path: path, Err: err}
	}
	c.trim() // the adopted blocks may push others out
	return nil
}

// adoptInto renames path over the blob's cache file, with the blob's
// file held exclusively, and marks every block present.
func (c *Cache) adoptInto(blob realize.Hash, size int64, blocks realize.BlockMap, path string) (*blobState, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, &realize.Error{Op: "adopt into cache", Kind: realize.Unavailable, Path: path, Err: errClosed}
		}
		b := c.blobs[blob]
		if b == nil {
			b = c.newStateLocked(blob, size, blocks)
		}
		c.mu.Unlock()
		b.io.Lock()
		c.mu.Lock()
		if b.gone {
			c.mu.Unlock()
			b.io.Unlock()
			continue
		}
		if b.size != size || !slices.Equal(b.blocks, blocks) {
			// The map we had came from a peer; the caller's comes from
			// the bytes being adopted. Start over with the latter.
			c.forgetLocked(b)
			c.mu.Unlock()
			b.io.Unlock()
			continue
		}
		c.mu.Unlock()
		err := os.Rename(path, c.path(blob))
		c.mu.Lock()
		if err == nil {
			for i := range b.blocks {
				c.markPresentLocked(b, i)
			}
			b.unsynced = false // the file was complete and is not ours to have written
			c.touchLocked(b)
		}
		c.mu.Unlock()
		b.io.Unlock()
		if err != nil {
			return nil, renameError("adopt into cache", path, err)
		}
		return b, nil
	}
}

// Take moves the file of a completely present blob out of the cache to
// dst by renaming it (pinning without copying). Kind NotExist when the
// blob is not completely present; Kind Unsupported when dst is on another
// file system (the blob then stays in the cache). The file is fsynced
// first and has mode 0600: the caller sets the mode it wants.
func (c *Cache) Take(blob realize.Hash, dst string) error {
	const op = "take from cache"
	c.mu.Lock()
	b := c.blobs[blob]
	c.mu.Unlock()
	notExist := &realize.Error{Op: op, Kind: realize.NotExist, Path: dst,
		Err: fmt.Errorf("blob %s is not completely cached", blob.Short())}
	if b == nil {
		return notExist
	}
	b.io.Lock()
	defer b.io.Unlock()
	c.mu.Lock()
	ok := !b.gone && b.complete()
	unsynced := b.unsynced
	c.mu.Unlock()
	if !ok {
		return notExist
	}
	src := c.path(blob)
	if unsynced {
		if f, err := os.OpenFile(src, os.O_RDWR, 0); err == nil {
			f.Sync()
			f.Close()
		}
	}
	if err := os.Rename(src, dst); err != nil {
		return renameError(op, dst, err)
	}
	c.mu.Lock()
	c.forgetLocked(b)
	c.mu.Unlock()
	return c.deleteRecord(blob)
}

func renameError(op, path string, err error) error {
	if errors.Is(err, syscall.EXDEV) {
		return &realize.Error{Op: op, Kind: realize.Unsupported, Path: path,
			Err: fmt.Errorf("not on the cache's file system, so it cannot be moved without copying: %w", err)}
	}
	return &realize.Error{Op: op, Kind: osKind(err), Path: path, Err: err}
}

func osKind(err error) realize.ErrKind {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return realize.NotExist
	case errors.Is(err, os.ErrPermission):
		return realize.Permission
	}
	return realize.IO
}

// syncDir makes a rename into dir durable.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
