package real

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/realizefs/realize"
)

// Hashed is the content identity of one file.
type Hashed struct {
	Blob   realize.Hash     // BLAKE3-256 of all the bytes; equals b3sum's output
	Size   int64            // bytes hashed
	Blocks realize.BlockMap // content-defined blocks, in order; empty for empty content
}

// Hasher computes blob hashes and block maps. It is safe for concurrent use;
// each call borrows a pooled worker (a 2 MiB chunker buffer, a 64 KiB probe
// and two BLAKE3 states, plus 8 MiB once it pipelined a large file), so
// memory follows the number of concurrent calls, not the number of files.
type Hasher struct {
	pool   sync.Pool
	active atomic.Int32 // HashFile calls under way

	// hookOpened, when set, runs after HashFile opened and checked the file
	// and before it reads it. Tests use it to change the file mid-hash.
	hookOpened func()
}

// NewHasher returns a Hasher.
func NewHasher() *Hasher { return &Hasher{} }

func (h *Hasher) get() (*hashWorker, error) {
	if w, ok := h.pool.Get().(*hashWorker); ok {
		return w, nil
	}
	return newHashWorker()
}

// HashReader hashes everything r yields.
func (h *Hasher) HashReader(ctx context.Context, r io.Reader) (Hashed, error) {
	const op = "hash"
	w, err := h.get()
	if err != nil {
		return Hashed{}, err
	}
	defer h.pool.Put(w)
	hs, err := w.hash(ctx, r, -1, false)
	if err != nil {
		return Hashed{}, &realize.Error{Op: op, Kind: errKind(err), Err: err}
	}
	return hs, nil
}

// HashFile hashes the regular file at path, which the caller saw with the
// identity want. It never follows a symlink at path. The result is returned
// only if the file kept that identity from before the first read to after
// the last (checked on the open file and again on the path), so a file
// growing, being rewritten or being replaced meanwhile yields an error of
// Kind realize.Changed: the caller retries later. A file that is gone yields
// NotExist, one that may not be read Permission, a canceled ctx Canceled.
//
// Like every mtime-based check this trusts the file system's timestamps: a
// same-size rewrite within one timestamp tick is invisible here.
func (h *Hasher) HashFile(ctx context.Context, path string, want Stat) (Hashed, error) {
	const op = "hash file"
	fail := func(kind realize.ErrKind, err error) (Hashed, error) {
		return Hashed{}, &realize.Error{Op: op, Kind: kind, Path: path, Err: err}
	}
	if err := ctx.Err(); err != nil {
		return fail(realize.Canceled, err)
	}
	f, err := os.OpenFile(path, openFlags, 0)
	if err != nil {
		return fail(errKind(err), err)
	}
	defer f.Close()
	if err := checkOpen(f, want); err != nil {
		return fail(errKind(err), err)
	}
	if h.hookOpened != nil {
		h.hookOpened()
	}
	hs, err := h.hashOpen(ctx, &watchedReader{f: f, want: want}, want.Size)
	if err != nil {
		return fail(errKind(err), err)
	}
	if err := checkAfter(f, path, want, hs.Size); err != nil {
		return fail(errKind(err), err)
	}
	return hs, nil
}

// hashLanded hashes a temporary file in order as a Fill writes it (see
// Landed). Blocks the Fill verified against their hashes are not hashed
// again; every byte still goes through the blob hash and the chunker, so
// the result is what HashFile would return for the complete file. It runs
// beside the transfer, not pipelined: block hashes mostly come verified,
// so the blob hash is the only BLAKE3 pass here.
func (h *Hasher) hashLanded(ctx context.Context, l *Landed) (Hashed, error) {
	w, err := h.get()
	if err != nil {
		return Hashed{}, err
	}
	defer h.pool.Put(w)
	h.active.Add(1)
	defer h.active.Add(-1)
	w.known = l.knownBlock
	defer func() { w.known = nil }()
	return w.hash(ctx, l.reader(), l.size, false)
}

func (h *Hasher) hashOpen(ctx context.Context, f io.Reader, size int64) (Hashed, error) {
	w, err := h.get()
	if err != nil {
		return Hashed{}, err
	}
	defer h.pool.Put(w)
	n := h.active.Add(1)
	defer h.active.Add(-1)
	pipeline := size >= pipelineMin && 2*int(n) <= runtime.GOMAXPROCS(0)
	return w.hash(ctx, f, size, pipeline)
}

// watchCheckEvery is how much of a file is read between two checks that
// it is not being written meanwhile.
const watchCheckEvery = 64 << 20

// watchedReader reads an open file and, every watchCheckEvery bytes,
// checks that its size and mtime are still the ones the scanner saw: a
// large file still being written is given up early (Changed) instead of
// being read to the end for nothing.
type watchedReader struct {
	f     *os.File
	want  Stat
	since int64
}

func (w *watchedReader) Read(p []byte) (int, error) {
	n, err := w.f.Read(p)
	if w.since += int64(n); w.since >= watchCheckEvery {
		w.since = 0
		if fi, serr := w.f.Stat(); serr == nil {
			if st := StatOf(fi); st.Size != w.want.Size || st.MTime != w.want.MTime {
				return n, errChanged
			}
		}
	}
	return n, err
}

// errChanged marks an error as "the file changed under us" for errKind.
var errChanged = errors.New("file changed while hashing")

// checkOpen makes sure the open file is the regular file the caller saw.
func checkOpen(f *os.File, want Stat) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: now a %v", errChanged, fi.Mode().Type())
	}
	return sameContent(want, StatOf(fi), "before reading")
}

// checkAfter makes sure nothing changed while reading: the open file kept
// its identity, and the path still names that file.
func checkAfter(f *os.File, path string, want Stat, read int64) error {
	if read != want.Size {
		return fmt.Errorf("%w: read %d bytes, expected %d", errChanged, read, want.Size)
	}
	// The path first: a file deleted meanwhile is reported as gone, not as
	// changed (unlinking moves its ctime).
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if err := sameContent(want, StatOf(fi), "at path after reading"); err != nil {
		return err
	}
	fi, err = f.Stat()
	if err != nil {
		return err
	}
	return sameContent(want, StatOf(fi), "while reading")
}

func sameContent(want, got Stat, when string) error {
	switch {
	case got.Size != want.Size:
		return fmt.Errorf("%w: size %d, expected %d (%s)", errChanged, got.Size, want.Size, when)
	case got.MTime != want.MTime:
		return fmt.Errorf("%w: mtime changed (%s)", errChanged, when)
	case got.CTime != want.CTime:
		return fmt.Errorf("%w: ctime changed (%s)", errChanged, when)
	case got.Inode != want.Inode:
		return fmt.Errorf("%w: replaced by another file (%s)", errChanged, when)
	}
	return nil
}

// errKind classifies the errors that opening, stat-ing and reading a file
// produce.
func errKind(err error) realize.ErrKind {
	switch {
	case errors.Is(err, errChanged):
		return realize.Changed
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return realize.Canceled
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return realize.NotExist
	case errors.Is(err, fs.ErrPermission):
		return realize.Permission
	case errors.Is(err, syscall.ELOOP), errors.Is(err, syscall.ENXIO):
		// O_NOFOLLOW met a symlink, or the path is now a socket: the regular
		// file the caller saw was replaced.
		return realize.Changed
	}
	return realize.IO
}

// Stat is the cheap identity the scanner compares to skip unchanged files.
// Times are Unix nanoseconds.
type Stat struct {
	Size  int64
	MTime int64
	CTime int64 // inode change time: catches edits that restore the mtime
	Inode uint64
	Dev   uint64
	Mode  os.FileMode
}

// StatOf extracts a Stat from what os.Stat or os.Lstat returned. On systems
// without inode numbers and change times those fields are zero.
func StatOf(fi os.FileInfo) Stat {
	s := Stat{Size: fi.Size(), MTime: fi.ModTime().UnixNano(), Mode: fi.Mode()}
	sysStat(fi, &s)
	return s
}

// SameContent tells whether o has the size, mtime, ctime and inode of s, that
// is whether a file with stat o can be assumed to hold the bytes hashed when
// it had stat s.
func (s Stat) SameContent(o Stat) bool {
	return s.Size == o.Size && s.MTime == o.MTime && s.CTime == o.CTime && s.Inode == o.Inode
}
