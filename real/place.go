package real

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/realizefs/realize"
	"github.com/zeebo/blake3"
	bolt "go.etcd.io/bbolt"
)

// Change is a version of a path, decided elsewhere (by consensus), to be
// put in the real directory and recorded.
type Change struct {
	Op     realize.Op          // what the history entry says happened
	Result realize.Alternative // what the path holds afterwards; Kind None removes it
	// After a conflict: Own is the result's own version (Result.Version is
	// the merge of the frontier) and Others the rest of the frontier.
	Own    realize.VersionVector
	Others []realize.Alternative
	// Losers are the Others worth keeping (they hold something): recorded
	// as conflicts, and a local one is moved aside rather than overwritten.
	Losers []realize.Alternative
	// Keep says the real path already holds Result (the local version won,
	// or the remote one has the same content): only the record changes.
	Keep bool
	// Fill writes a file's bytes into f, from position 0. It must verify
	// every block before writing it; Place checks the whole blob again,
	// hashing what l says is final while Fill is still writing the rest.
	Fill func(ctx context.Context, f *os.File, l *Landed) error
	// Unreal records a file without its bytes: listed here, held by
	// other peers. Only where nothing is on disk at the path.
	Unreal bool
	// Drop, for Op OpResolve, is the vector of the kept-aside versions the
	// resolution drops: recorded in the entry (its Own) and applied to the
	// conflicts list in the same transaction; their bytes kept here are
	// then freed. With Keep, no Result version and nothing at the path
	// (dropOnly), it is all the change does.
	Drop realize.VersionVector
	// Stamp makes the change a new local version (a copy a resolution
	// places): the log gives it this peer's next sequence number, on top
	// of Result.Version, instead of recording a version decided elsewhere.
	Stamp bool
}

// dropOnly tells whether the change is a resolution at a path with no
// record (its tombstone was trimmed away): it records the drop and
// nothing at the path. Result then has no version and holds nothing.
func (ch *Change) dropOnly() bool {
	return ch.Op == realize.OpResolve && ch.Result.Meta.Kind == realize.KindNone && len(ch.Result.Version) == 0
}

// Decider looks at the local state of a path (its frontier: usually one
// version) and returns what to place, or nil to leave the path alone.
// Place calls it under the arena's lock, after recording any local change
// not yet recorded.
type Decider func(local []realize.Alternative) (*Change, error)

// ErrLocalChange means the real file changed between the decision and the
// moment of placing; the change was not placed. The next look at the path
// records the local change, and deciding again makes it a conflict.
var ErrLocalChange = errors.New("the local file changed; not overwritten")

// Place applies a decision about one path to the real directory: the new
// bytes go to a temporary file beside the target, are verified, and are
// renamed into place only if the local file is still what the index says.
// A local version that lost a conflict is moved aside (into ConflictDir,
// same file system, no copy), never overwritten. The index record and the
// history entry are committed together afterwards.
func (a *Arena) Place(ctx context.Context, path realize.Path, decide Decider) error {
	if path.IsRoot() || a.ignored(path, false) || a.ignored(path, true) {
		return &realize.Error{Op: "place", Kind: realize.Invalid, Arena: a.name, Path: string(path), Err: errors.New("reserved or ignored path")}
	}
	if a.heldEmpty() {
		// Most likely a disk not mounted: what is placed now would be
		// hidden by the disk once it is back, and then overwritten by the
		// disk's older files. Remote changes wait (Busy: retried later).
		return &realize.Error{Op: "place", Kind: realize.Busy, Arena: a.name, Path: string(path), Err: ErrEmptyHold}
	}
	local, ch, err := a.decideLocked(ctx, path, decide)
	if err != nil || ch == nil {
		return err
	}
	if !ch.Keep && ch.Result.Meta.Kind != realize.KindNone {
		if err := a.clearKept(path); err != nil {
			return err
		}
	}
	// The bytes are fetched without the arena's lock: a large download must
	// not hold back the recording of local edits meanwhile.
	var fill filled
	if !ch.Keep && !ch.Unreal && ch.Result.Meta.Kind == realize.KindFile {
		if err := a.safeParents(path); err != nil {
			return err
		}
		if fill.tmp, fill.h, err = a.fillTemp(ctx, path, ch); err != nil {
			return err
		}
		defer func() {
			if fill.tmp != "" {
				os.Remove(fill.tmp)
			}
		}()
	}
	it, err := a.placeLocked(path, decide, local, ch, fill)
	if err != nil {
		return err
	}
	fill.tmp = "" // renamed into place
	return a.awaitCommit(it)
}

// placeLocked is the end of Place, under the arena's lock: the path may
// have changed while the bytes came, so it decides again on what is
// there now and goes ahead only if the outcome is the same content; then
// it puts the result in place and queues its record.
func (a *Arena) placeLocked(path realize.Path, decide Decider, local *Record, ch *Change, fill filled) (*placed, error) {
	a.scanMu.Lock()
	defer a.scanMu.Unlock()
	if a.isQueued(path) {
		a.commitQueued() // its record first: it is what is there now
	}
	now, err := a.record0(path)
	if err != nil {
		return nil, err
	}
	if !sameRecord(now, local) {
		next, err := decide(now.Frontier())
		if err != nil || next == nil {
			return nil, err
		}
		if next.Keep != ch.Keep || next.Unreal != ch.Unreal || next.Result.Meta != ch.Result.Meta {
			return nil, &realize.Error{Op: "place", Kind: realize.Changed, Arena: a.name, Path: string(path), Err: ErrLocalChange}
		}
		local, ch = now, next
	}
	it := &placed{path: path, ch: ch}
	switch {
	case ch.Keep && local == nil && ch.dropOnly():
		// A resolution at a path whose tombstone was trimmed: it only
		// drops versions from the conflicts list.
	case ch.Keep:
		if local == nil {
			return nil, a.placeErr(path, realize.NotExist, errors.New("nothing recorded at the path to keep"))
		}
		if err := a.unchanged(path, local); err != nil {
			return nil, err
		}
		ch.Unreal = local.IsUnreal()
		it.st = local.Stat
	case ch.Unreal:
		if local.IsReal() || live(local) && local.Meta.Kind != realize.KindFile {
			return nil, a.placeErr(path, realize.Invalid, errors.New("only a path with nothing on disk can be recorded unreal"))
		}
		if err := a.unchanged(path, local); err != nil {
			return nil, err
		}
	default:
		stat, err := a.install(path, local, ch, fill.tmp)
		if err != nil {
			return nil, err
		}
		it.st, it.h, it.dir, it.installed = stat, fill.h, filepath.Dir(a.abs(path)), true
	}
	a.enqueue(it)
	return it, nil
}

// tempSuffix ends the names of path's temporary files (one per blob).
func tempSuffix(path realize.Path) string {
	ph := blake3.Sum256([]byte(path))
	return fmt.Sprintf("-%x", ph[:4])
}

// dropTemps removes what is left of earlier versions' transfers to path
// once a newer one is placed: kept for a resumed transfer, they would
// never be resumed now (a file another peer rewrote many times left one
// per version it could no longer serve).
func (a *Arena) dropTemps(path realize.Path) {
	dir := filepath.Dir(a.abs(path))
	olds, _ := filepath.Glob(filepath.Join(dir, TempPrefix+"*"+tempSuffix(path)))
	for _, old := range olds {
		if err := os.Remove(old); err != nil && !errors.Is(err, fs.ErrNotExist) {
			a.logger.Warn("stale temporary file not removed", "path", old, "err", err)
		}
	}
}

// filled is a verified temporary file waiting to be put in place.
type filled struct {
	tmp string
	h   Hashed
}

// decideLocked records any unrecorded local change at path, then asks
// decide, all under the arena's lock.
func (a *Arena) decideLocked(ctx context.Context, path realize.Path, decide Decider) (*Record, *Change, error) {
	a.scanMu.Lock()
	defer a.scanMu.Unlock()
	if a.isQueued(path) {
		a.commitQueued() // the path's own record first
	}
	return a.decideIn(ctx, path, decide)
}

// decideIn is decideLocked with the lock held by the caller.
func (a *Arena) decideIn(ctx context.Context, path realize.Path, decide Decider) (*Record, *Change, error) {
	if err := a.noSymlinkAbove(path); err != nil {
		return nil, nil, err
	}
	p := &plan{incidental: true}
	if err := a.checkFile(path, p); err != nil {
		return nil, nil, err
	}
	// A file is checked on its own; anything else at the path (a
	// directory or symlink, or nothing where the index has something)
	// needs its parent's listing compared. Nothing on disk and nothing in
	// the index — the common case of a new file — needs neither.
	rec, err := a.record0(path)
	if err != nil {
		return nil, nil, err
	}
	info, statErr := os.Lstat(a.abs(path))
	if (statErr != nil && live(rec) && !rec.IsUnreal() || statErr == nil && !info.Mode().IsRegular()) && a.isRealDir(path.Dir()) {
		a.commitQueued() // the listing must not show files placed but not recorded
		if err := a.diffDir(ctx, path.Dir(), false, p); err != nil {
			return nil, nil, err
		}
	}
	if err := a.record(ctx, p); err != nil {
		return nil, nil, err
	}
	local, err := a.record0(path)
	if err != nil {
		return nil, nil, err
	}
	ch, err := decide(local.Frontier())
	return local, ch, err
}

// sameRecord tells whether a path's record is unchanged between two reads.
func sameRecord(a, b *Record) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Deleted == b.Deleted && a.Meta == b.Meta && a.Stat == b.Stat && a.Version.Compare(b.Version) == realize.Equal
}

// record0 reads the index record of one path.
func (a *Arena) record0(path realize.Path) (*Record, error) {
	var r *Record
	err := a.db.View(func(tx *bolt.Tx) error {
		ix, err := OpenIndex(tx, a.name)
		if err == nil {
			r, err = ix.Get(path)
		}
		return err
	})
	return r, err
}

// install puts the change's result at path — the verified temporary file
// tmp for a file — under the arena's lock, and returns its stat.
func (a *Arena) install(path realize.Path, local *Record, ch *Change, tmp string) (st Stat, err error) {
	abs := a.abs(path)
	v := a.via()
	if err := a.safeParentsVia(v, path); err != nil {
		return st, err
	}
	m := ch.Result.Meta
	if m.Kind == realize.KindSymlink {
		tmp = a.tempName(path)
		if err := os.Symlink(m.Target, tmp); err != nil {
			return st, a.placeErr(path, realize.IO, err)
		}
		defer os.Remove(tmp) // a no-op once renamed into place
	}
	if err := a.unchanged(path, local); err != nil {
		return st, err
	}
	if err := a.moveAsideLoser(v, path, local, ch); err != nil {
		return st, err
	}
	if err := a.swap(v, path, tmp, m); err != nil {
		if realize.KindOf(err) == realize.Conflict {
			return st, err
		}
		return st, a.placeErr(path, realize.IO, err)
	}
	// The directory is fsynced by the group commit, before the record.
	if m.Kind == realize.KindNone {
		return st, nil
	}
	info, err := os.Lstat(abs)
	if err != nil {
		return st, a.placeErr(path, realize.IO, err)
	}
	return StatOf(info), nil
}

// safeParents makes sure every directory above path is a real directory
// inside the arena, creating missing ones one level at a time. A parent
// that is a symlink is refused: writing through it could land anywhere
// (invariant 6 — a peer that sends a symlink "d" -> "/etc" and then a file
// "d/passwd" must not reach /etc).
func (a *Arena) safeParents(path realize.Path) error {
	return a.safeParentsVia(via{a: a}, path)
}

// safeParentsVia is safeParents making missing directories through v.
func (a *Arena) safeParentsVia(v via, path realize.Path) error {
	dir := a.root
	parts := strings.Split(string(path.Dir()), "/")
	if path.Dir().IsRoot() {
		parts = nil
	}
	rel := realize.Path("")
	for _, name := range parts {
		dir = filepath.Join(dir, name)
		rel = rel.Join(name)
		info, err := os.Lstat(dir)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := v.mkdir(rel); err != nil && !errors.Is(err, fs.ErrExist) {
				return a.placeErr(path, realize.IO, err)
			}
			continue
		case err != nil:
			return a.placeErr(path, realize.IO, err)
		case info.Mode()&fs.ModeSymlink != 0:
			return a.placeErr(path, realize.Invalid, fmt.Errorf("%s is a symlink: not written through", filepath.Base(dir)))
		case !info.IsDir():
			return a.placeErr(path, realize.Changed, fmt.Errorf("%s is not a directory", filepath.Base(dir)))
		}
	}
	return nil
}

// noSymlinkAbove checks that no existing directory above path is a
// symlink. Lstat and ReadDir follow symlinks in the parent components of a
// path, so this is checked before the scanner looks at a path it was told
// about rather than one it reached by walking.
func (a *Arena) noSymlinkAbove(path realize.Path) error {
	dir := a.root
	for _, name := range strings.Split(string(path), "/")[:strings.Count(string(path), "/")] {
		dir = filepath.Join(dir, name)
		info, err := os.Lstat(dir)
		if err != nil || isWhiteout(info) {
			return nil // missing (an overlay whiteout is a removal): nothing to follow
		}
		if !info.IsDir() {
			return a.placeErr(path, realize.Invalid, fmt.Errorf("%s is a symlink or a file, not a directory", filepath.Base(dir)))
		}
	}
	return nil
}

// swap makes path hold m: the temporary file or symlink tmp (a name in
// path's directory) renamed over it, a directory created, or the path
// removed — through v.
func (a *Arena) swap(v via, path realize.Path, tmp string, m realize.Meta) error {
	abs := a.abs(path)
	switch m.Kind {
	case realize.KindFile, realize.KindSymlink:
		if fi, err := os.Lstat(abs); err == nil && fi.IsDir() {
			if err := v.remove(path); err != nil { // a directory replaced by a file: only if empty
				return notEmpty(err)
			}
		}
		return v.rename(path.Dir().Join(filepath.Base(tmp)), path)
	case realize.KindDir:
		if fi, err := os.Lstat(abs); err == nil && !fi.IsDir() {
			if err := v.remove(path); err != nil {
				return err
			}
		}
		if err := v.mkdir(path); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		return os.Chtimes(abs, time.Time{}, time.Unix(0, m.MTime))
	default:
		err := v.remove(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return notEmpty(err)
	}
}

// ErrNotEmpty: a directory another peer removed (or replaced by a file)
// still holds things here. What is here wins; the removal is not applied.
var ErrNotEmpty = errors.New("directory not empty: kept")

func notEmpty(err error) error {
	if errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST) {
		return &realize.Error{Op: "place", Kind: realize.Conflict, Err: ErrNotEmpty}
	}
	return err
}

// fillTemp writes and verifies a file's bytes in a temporary file next to
// the target (same directory, so the final rename is atomic and copies
// nothing), with the exec bit and mtime already set.
func (a *Arena) fillTemp(ctx context.Context, path realize.Path, ch *Change) (string, Hashed, error) {
	m := ch.Result.Meta
	// One temporary file per blob and directory, kept when a transfer is
	// cut short: the next attempt finds the blocks it already has.
	// Named by blob and path: two placements of the same content in one
	// directory (they can run at once) never share a file.
	name := filepath.Join(filepath.Dir(a.abs(path)), TempPrefix+m.Blob.String()+tempSuffix(path))
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return "", Hashed{}, a.placeErr(path, realize.IO, err)
	}
	ok, resumable := false, false
	defer func() {
		f.Close()
		if !ok && !resumable {
			os.Remove(name)
		}
	}()
	if ch.Fill == nil {
		return "", Hashed{}, a.placeErr(path, realize.Invalid, errors.New("no content source"))
	}
	landed := newLanded(f, m.Size)
	defer landed.close() // after the hashing is waited for, below
	hashed := landed.follow(ctx, a.hasher)
	err = ch.Fill(ctx, f, landed)
	if ferr := landed.flush(); err == nil && ferr != nil {
		err = a.placeErr(path, realize.IO, ferr)
	}
	landed.finish(err)
	if err != nil {
		_, _ = hashed() // the hashing stops at once; wait for it to let go of f
		k := realize.KindOf(err)
		resumable = k == realize.Unavailable || k == realize.Canceled || ctx.Err() != nil
		return "", Hashed{}, err
	}
	mode := os.FileMode(0o644)
	if m.Exec {
		mode = 0o755
	}
	if err := f.Chmod(mode); err != nil {
		return "", Hashed{}, a.placeErr(path, realize.IO, err)
	}
	if err := os.Chtimes(name, time.Time{}, time.Unix(0, m.MTime)); err != nil {
		return "", Hashed{}, a.placeErr(path, realize.IO, err)
	}
	// The times are set before the fsync, so that they are durable too.
	if err := f.Sync(); err != nil {
		return "", Hashed{}, a.placeErr(path, realize.IO, err)
	}
	// Invariant 2: the index never points at bytes that do not match.
	got, err := landedHash(landed, hashed, m)
	if err != nil {
		return "", Hashed{}, a.placeErr(path, errKind(err), err)
	}
	if info, err := f.Stat(); err != nil || info.Size() != got.Size {
		return "", Hashed{}, a.placeErr(path, realize.Corrupt, fmt.Errorf("temporary file changed size while placed: %v", err))
	}
	if got.Blob != m.Blob || got.Size != m.Size {
		return "", Hashed{}, a.placeErr(path, realize.Corrupt, fmt.Errorf("received content hashes to %s (%d bytes), want %s (%d bytes)",
			got.Blob.Short(), got.Size, m.Blob.Short(), m.Size))
	}
	ok = true
	return name, got, nil
}

// landedHash returns the identity of what a Fill wrote: known at once for
// one verified block, else the result of hashing it as it landed.
func landedHash(l *Landed, hashed func() (Hashed, error), m realize.Meta) (Hashed, error) {
	if h, ok := l.oneBlock(m); ok {
		return h, nil
	}
	return hashed()
}

func (a *Arena) tempName(path realize.Path) string {
	return filepath.Join(filepath.Dir(a.abs(path)), fmt.Sprintf("%s%d-%s", TempPrefix, a.clock.Now().UnixNano(), path.Base()))
}

// unchanged checks, at the last moment, that the real path is still what
// the index says (or absent, if the index says so).
func (a *Arena) unchanged(path realize.Path, local *Record) error {
	info, err := os.Lstat(a.abs(path))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// A held deletion (guard.go) is known: nothing there to keep.
		if !live(local) || local.IsUnreal() || a.heldDeletion(path) {
			return nil
		}
	case err != nil:
		return a.placeErr(path, realize.IO, err)
	case !live(local):
	case local.Meta.Kind == realize.KindDir && info.IsDir():
		return nil
	case local.Meta.Kind == realize.KindSymlink && info.Mode()&fs.ModeSymlink != 0:
		if t, err := os.Readlink(a.abs(path)); err == nil && t == local.Meta.Target {
			return nil
		}
	case local.Meta.Kind == realize.KindFile && info.Mode().IsRegular() && stillSame(local.Stat, StatOf(info)):
		return nil
	}
	return &realize.Error{Op: "place", Kind: realize.Changed, Arena: a.name, Path: string(path), Err: ErrLocalChange}
}

// stillSame compares a recorded stat with the file's current one. A
// poisoned ctime (a racily clean file, see racyWindow) was just rehashed
// under the arena lock by Place, so the other fields are trusted here.
func stillSame(rec, now Stat) bool {
	if rec.CTime == -1 {
		now.CTime = -1
	}
	return rec.SameContent(now)
}

// moveAsideLoser moves the local file into ConflictDir when it is one of
// the versions that lost: its bytes must survive the placing.
func (a *Arena) moveAsideLoser(v via, path realize.Path, local *Record, ch *Change) error {
	if !local.IsReal() {
		return nil
	}
	for _, l := range ch.Losers {
		if l.Meta.Blob != local.Meta.Blob || l.Meta.Kind != realize.KindFile {
			continue
		}
		dir := filepath.Join(a.root, ConflictDir)
		if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
			if err := v.mkdir(ConflictDir); err != nil && !errors.Is(err, fs.ErrExist) {
				return a.placeErr(path, realize.IO, err)
			}
		}
		dst := realize.Path(ConflictDir).Join(local.Meta.Blob.String())
		if _, err := os.Lstat(a.abs(dst)); err == nil {
			return nil // these bytes are kept already
		}
		if err := v.rename(path, dst); err != nil {
			if errors.Is(err, fs.ErrNotExist) && a.heldDeletion(path) {
				return nil // deleted here, the deletion held: no bytes to keep
			}
			return a.placeErr(path, realize.IO, err)
		}
		return syncDir(dir)
	}
	return nil
}

// OpenBlob opens a local file whose recorded content is blob and which is
// still what was recorded: a source of those bytes that needs no peer.
// Conflict losers kept aside count too.
func (a *Arena) OpenBlob(blob realize.Hash) (*os.File, error) {
	var paths []realize.Path
	err := a.db.View(func(tx *bolt.Tx) error {
		ix, err := OpenIndex(tx, a.name)
		if err == nil {
			paths = ix.PathsOf(blob)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, p := range paths {
		rec, err := a.record0(p)
		if err != nil || !rec.IsReal() || rec.Meta.Blob != blob {
			continue
		}
		f, err := os.Open(a.abs(p))
		if err != nil {
			continue
		}
		if info, err := f.Stat(); err == nil && info.Mode().IsRegular() && stillSame(rec.Stat, StatOf(info)) {
			return f, nil
		}
		f.Close()
	}
	if p, ok := a.ConflictBytes(blob); ok {
		return os.Open(p)
	}
	return nil, &realize.Error{Op: "open blob", Kind: realize.NotExist, Arena: a.name, Err: fmt.Errorf("no local copy of %s", blob.Short())}
}

// KeptAside tells whether the bytes of blob are kept aside (a conflict
// loser's) in the real directory root of an arena.
func KeptAside(root string, blob realize.Hash) bool {
	_, err := os.Lstat(filepath.Join(root, ConflictDir, blob.String()))
	return err == nil
}

// ConflictBytes returns where the bytes of a conflict loser are kept on
// this peer, if they are.
func (a *Arena) ConflictBytes(blob realize.Hash) (string, bool) {
	return filepath.Join(a.root, ConflictDir, blob.String()), KeptAside(a.root, blob)
}

func (a *Arena) placeErr(path realize.Path, kind realize.ErrKind, err error) error {
	return &realize.Error{Op: "place", Kind: kind, Arena: a.name, Path: string(path), Err: err}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
