package daemon

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/nfs"
	"github.com/realizefs/realize/real"
	"github.com/realizefs/realize/unreal"
)

// share is the household share as the NFS server sees it: for each arena,
// the union of its real directory (authoritative for what is on disk, even
// before the indexer recorded it) and the unreal files of the index.
type share struct {
	d *Daemon
}

func (s *share) Arenas() []nfs.Arena {
	var out []nfs.Arena
	for _, a := range s.d.arenas.list {
		out = append(out, &shareArena{a: a, cache: s.d.cache, d: s.d})
	}
	return out
}

// FSStat reports the cache quota: what unreal reads may still bring in.
func (s *share) FSStat(ctx context.Context) (nfs.FSStat, error) {
	used, limit := s.d.cache.Usage()
	free := max(limit-used, 0)
	return nfs.FSStat{TotalBytes: uint64(limit), FreeBytes: uint64(free), AvailBytes: uint64(free),
		TotalFiles: 1 << 32, FreeFiles: 1 << 31}, nil
}

// shareArena is one arena of the share.
type shareArena struct {
	a     *real.Arena
	cache *unreal.Cache
	d     *Daemon
}

func (s *shareArena) Name() realize.ArenaName { return s.a.Name() }

func (s *shareArena) err(op string, path realize.Path, kind realize.ErrKind, err error) error {
	return &realize.Error{Op: op, Kind: kind, Arena: s.a.Name(), Path: string(path), Err: err}
}

// osErr classifies an OS error for the NFS layer.
func (s *shareArena) osErr(op string, path realize.Path, err error) error {
	var re *realize.Error
	if errors.As(err, &re) {
		return err
	}
	kind := realize.IO
	switch {
	case errors.Is(err, fs.ErrNotExist):
		kind = realize.NotExist
	case errors.Is(err, fs.ErrExist):
		kind = realize.Exist
	case errors.Is(err, fs.ErrPermission):
		kind = realize.Permission
	case errors.Is(err, syscall.ENOTEMPTY):
		kind = realize.NotEmpty
	case errors.Is(err, syscall.EISDIR):
		kind = realize.IsDir
	case errors.Is(err, syscall.ENOTDIR):
		kind = realize.NotDir
	}
	return s.err(op, path, kind, err)
}

// abs checks path (not reserved, no symlink above it) and returns where it
// is on disk.
func (s *shareArena) abs(op string, path realize.Path) (string, error) {
	if !path.IsRoot() && s.a.IsReserved(path, false) && s.a.IsReserved(path, true) {
		return "", s.err(op, path, realize.NotExist, errors.New("reserved name"))
	}
	abs, err := s.a.Abs(path)
	if err != nil {
		return "", s.err(op, path, realize.NotDir, err)
	}
	return abs, nil
}

// lookup returns path's record as the mount shows it: a removal the
// delete guard holds (real/guard.go) shows as nothing there.
func (s *shareArena) lookup(path realize.Path) (*real.Record, error) {
	rec, err := s.a.Lookup(path)
	if err != nil || rec == nil || !s.a.HeldDeletion(path) {
		return rec, err
	}
	return nil, nil
}

func nodeOf(name realize.Path, info fs.FileInfo, target string) nfs.Node {
	m := realize.Meta{MTime: info.ModTime().UnixNano()}
	switch {
	case info.IsDir():
		m.Kind = realize.KindDir
	case info.Mode()&fs.ModeSymlink != 0:
		m.Kind, m.Target = realize.KindSymlink, target
	default:
		m.Kind, m.Size, m.Exec = realize.KindFile, info.Size(), info.Mode()&0o111 != 0
	}
	return nfs.Node{Name: name, Meta: m, Real: true}
}

// notOnDisk tells whether an error of a look at the real directory says
// nothing is there: nothing at the path, or a file (an overlay whiteout:
// a directory a person removed or renamed through the mount, not yet
// recorded) where a directory above it should be.
func notOnDisk(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// Stat implements nfs.Arena. What is on disk wins; where nothing is (or an
// overlay whiteout, which the indexer records as a removal), the index
// shows its unreal files, and its directories hidden by a removal the
// indexer has not recorded yet.
func (s *shareArena) Stat(ctx context.Context, path realize.Path) (nfs.Node, error) {
	abs, err := s.abs("stat", path)
	if err != nil {
		return nfs.Node{}, err
	}
	info, err := os.Lstat(abs)
	hidden := err == nil && real.IsWhiteout(info)
	if err == nil && !hidden {
		target := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			target, _ = os.Readlink(abs)
		}
		return nodeOf(path, info, target), nil
	}
	if err != nil && !notOnDisk(err) {
		return nfs.Node{}, s.osErr("stat", path, err)
	}
	hidden = hidden || err != nil && errors.Is(err, syscall.ENOTDIR)
	rec, err := s.lookup(path)
	if err != nil {
		return nfs.Node{}, err
	}
	if rec.IsUnreal() || hidden && rec != nil && !rec.Deleted && rec.Meta.Kind == realize.KindDir {
		return nfs.Node{Name: path, Meta: rec.Meta}, nil
	}
	return nfs.Node{}, s.err("stat", path, realize.NotExist, fs.ErrNotExist)
}

// Hidden implements nfs.Hider: an overlay whiteout hides path.
func (s *shareArena) Hidden(ctx context.Context, path realize.Path) bool {
	abs, err := s.abs("stat", path)
	if err != nil {
		return false
	}
	info, err := os.Lstat(abs)
	return err == nil && real.IsWhiteout(info)
}

// List implements nfs.Arena.
func (s *shareArena) List(ctx context.Context, dir realize.Path) ([]nfs.Node, error) {
	abs, err := s.abs("list", dir)
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(abs)
	gone := err != nil && notOnDisk(err) // hidden by a removal not recorded yet
	if err != nil && !gone {
		return nil, s.osErr("list", dir, err)
	}
	seen, hidden := map[string]bool{}, map[string]bool{}
	var out []nfs.Node
	for _, e := range ents {
		p := dir.Join(e.Name())
		if realize.CheckName(e.Name()) != nil || s.a.IsReserved(p, e.IsDir()) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // gone meanwhile
		}
		if real.IsWhiteout(info) {
			hidden[e.Name()] = true
			continue
		}
		target := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			target, _ = os.Readlink(abs + "/" + e.Name())
		}
		seen[e.Name()] = true
		out = append(out, nodeOf(realize.Path(e.Name()), info, target))
	}
	kids, err := s.a.Children(dir)
	if err != nil {
		return nil, err
	}
	for name, rec := range kids {
		hiddenDir := (gone || hidden[name]) && !rec.Deleted && rec.Meta.Kind == realize.KindDir
		if !seen[name] && (rec.IsUnreal() || hiddenDir) && !s.a.HeldDeletion(dir.Join(name)) {
			out = append(out, nfs.Node{Name: realize.Path(name), Meta: rec.Meta})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Open implements nfs.Arena.
func (s *shareArena) Open(ctx context.Context, path realize.Path) (nfs.ReadFile, error) {
	abs, err := s.abs("open", path)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(abs, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err == nil {
		info, err := f.Stat()
		if err != nil || info.IsDir() {
			f.Close()
			return nil, s.err("open", path, realize.IsDir, errors.New("a directory"))
		}
		return &realFile{File: f, size: info.Size()}, nil
	}
	// A whiteout (a character device with no driver) opens with ENXIO.
	if !notOnDisk(err) && !errors.Is(err, syscall.ENXIO) {
		return nil, s.osErr("open", path, err)
	}
	rec, err := s.lookup(path)
	if err != nil {
		return nil, err
	}
	if !rec.IsUnreal() {
		return nil, s.err("open", path, realize.NotExist, fs.ErrNotExist)
	}
	cf := openCached(s.cache, s.a.Name(), rec.Meta)
	// Bytes the cache fetches for it are shown under its path in status.
	hold, closed := cf.release, s.d.xfers.opened(s.a.Name(), path, rec.Meta)
	cf.release = func() { hold(); closed() }
	return cf, nil
}

// realFile is an open real file.
type realFile struct {
	*os.File
	size int64
}

func (f *realFile) Size() int64 { return f.size }

// cachedFile reads an unreal file through the cache. Its bytes are not
// evicted while it is open.
type cachedFile struct {
	cache   *unreal.Cache
	arena   realize.ArenaName
	meta    realize.Meta
	release func()
	once    sync.Once
}

func openCached(c *unreal.Cache, arena realize.ArenaName, m realize.Meta) *cachedFile {
	return &cachedFile{cache: c, arena: arena, meta: m, release: c.Hold(m.Blob)}
}

func (f *cachedFile) ReadAt(p []byte, off int64) (int, error) {
	// The cache bounds its own waits (Wait): a read never hangs.
	return f.cache.ReadAt(context.Background(), f.arena, f.meta, p, off)
}
func (f *cachedFile) Close() error { f.once.Do(f.release); return nil }
func (f *cachedFile) Size() int64  { return f.meta.Size }

// OpenWrite implements nfs.Arena: an unreal file is realized first, so
// the write lands in a real file like any local edit.
func (s *shareArena) OpenWrite(ctx context.Context, path realize.Path, create, truncate bool) (nfs.WriteFile, error) {
	abs, err := s.abs("write", path)
	if err != nil {
		return nil, err
	}
	if err := s.realizeIfUnreal(ctx, path); err != nil {
		return nil, err
	}
	flags := os.O_RDWR | syscall.O_NOFOLLOW
	if create {
		flags |= os.O_CREATE
	}
	if truncate {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(abs, flags, 0o644)
	if err != nil {
		return nil, s.osErr("write", path, err)
	}
	return f, nil
}

// realizeIfUnreal fetches an unreal file's bytes and makes it real.
func (s *shareArena) realizeIfUnreal(ctx context.Context, path realize.Path) error {
	rec, err := s.lookup(path)
	if err != nil || !rec.IsUnreal() {
		return err
	}
	m := rec.Meta
	return s.a.Realize(ctx, path, func(ctx context.Context, f *os.File) error {
		return s.cache.Fill(ctx, s.a.Name(), m, f, nil)
	})
}

// Mkdir implements nfs.Arena.
func (s *shareArena) Mkdir(ctx context.Context, path realize.Path) error {
	abs, err := s.abs("mkdir", path)
	if err != nil {
		return err
	}
	if rec, _ := s.lookup(path); rec.IsUnreal() {
		return s.err("mkdir", path, realize.Exist, fs.ErrExist)
	}
	if err := os.Mkdir(abs, 0o755); err != nil {
		return s.osErr("mkdir", path, err)
	}
	return nil
}

// Symlink implements nfs.Arena.
func (s *shareArena) Symlink(ctx context.Context, path realize.Path, target string) error {
	abs, err := s.abs("symlink", path)
	if err != nil {
		return err
	}
	if rec, _ := s.lookup(path); rec.IsUnreal() {
		return s.err("symlink", path, realize.Exist, fs.ErrExist)
	}
	if err := os.Symlink(target, abs); err != nil {
		return s.osErr("symlink", path, err)
	}
	return nil
}

// Remove implements nfs.Arena.
func (s *shareArena) Remove(ctx context.Context, path realize.Path) error {
	abs, err := s.abs("remove", path)
	if err != nil {
		return err
	}
	info, err := os.Lstat(abs)
	if errors.Is(err, fs.ErrNotExist) {
		if rec, _ := s.lookup(path); rec.IsUnreal() {
			return s.a.RemoveUnreal(ctx, path)
		}
		return s.err("remove", path, realize.NotExist, fs.ErrNotExist)
	}
	if err != nil {
		return s.osErr("remove", path, err)
	}
	if info.IsDir() {
		// A directory whose files are all unreal looks empty on disk.
		if has, err := s.a.HasUnrealUnder(path); err != nil || has {
			return s.err("remove", path, realize.NotEmpty, syscall.ENOTEMPTY)
		}
	}
	if err := os.Remove(abs); err != nil {
		return s.osErr("remove", path, err)
	}
	return nil
}

// Rename implements nfs.Arena.
func (s *shareArena) Rename(ctx context.Context, from, to realize.Path) error {
	src, err := s.abs("rename", from)
	if err != nil {
		return err
	}
	dst, err := s.abs("rename", to)
	if err != nil {
		return err
	}
	info, err := os.Lstat(src)
	if errors.Is(err, fs.ErrNotExist) {
		if rec, _ := s.lookup(from); rec.IsUnreal() {
			return s.a.RenameUnreal(ctx, from, to)
		}
		return s.err("rename", from, realize.NotExist, fs.ErrNotExist)
	}
	if err != nil {
		return s.osErr("rename", from, err)
	}
	if info.IsDir() {
		// Moving the directory on disk alone would leave its unreal
		// files' records behind, and the indexer would see them deleted:
		// the arena moves both at once.
		has, err := s.a.HasUnrealUnder(from)
		if err != nil {
			return err
		}
		if has {
			return s.a.RenameDir(ctx, from, to)
		}
	}
	if err := os.Rename(src, dst); err != nil {
		return s.osErr("rename", from, err)
	}
	return nil
}

// SetAttr implements nfs.Arena. Attributes of an unreal file are changed
// on a real copy: it is realized first, like any write.
func (s *shareArena) SetAttr(ctx context.Context, path realize.Path, a nfs.SetAttr) error {
	abs, err := s.abs("setattr", path)
	if err != nil {
		return err
	}
	if err := s.realizeIfUnreal(ctx, path); err != nil {
		return err
	}
	if a.Size != nil {
		if err := os.Truncate(abs, *a.Size); err != nil {
			return s.osErr("truncate", path, err)
		}
	}
	if a.Exec != nil {
		mode := os.FileMode(0o644)
		if *a.Exec {
			mode = 0o755
		}
		if err := os.Chmod(abs, mode); err != nil {
			return s.osErr("chmod", path, err)
		}
	}
	if a.MTime != nil {
		t := time.Unix(0, *a.MTime)
		if err := os.Chtimes(abs, t, t); err != nil {
			return s.osErr("chtimes", path, err)
		}
	}
	return nil
}

// Conflicts implements nfs.Arena.
func (s *shareArena) Conflicts(ctx context.Context) ([]nfs.ConflictVersion, error) {
	cs, err := s.a.Conflicts("")
	if err != nil {
		return nil, err
	}
	out := make([]nfs.ConflictVersion, 0, len(cs))
	for _, c := range cs {
		if c.Meta.Kind != realize.KindFile {
			continue // only files have bytes to show
		}
		out = append(out, nfs.ConflictVersion{Path: c.Path, Name: conflictName(c), Meta: c.Meta})
	}
	return out, nil
}

// conflictName is <peer>-<shorthash><.ext> (SPEC §4.4).
func conflictName(c real.Conflict) string {
	ext := ""
	base := string(c.Path.Base())
	for i := len(base) - 1; i > 0; i-- {
		if base[i] == '.' {
			ext = base[i:]
			break
		}
	}
	return real.VersionName(c.Alternative) + ext
}

// OpenConflict implements nfs.Arena: the bytes kept here, else fetched.
func (s *shareArena) OpenConflict(ctx context.Context, c nfs.ConflictVersion) (nfs.ReadFile, error) {
	if p, ok := s.a.ConflictBytes(c.Meta.Blob); ok {
		f, err := os.Open(p)
		if err != nil {
			return nil, s.osErr("open conflict", c.Path, err)
		}
		return &realFile{File: f, size: c.Meta.Size}, nil
	}
	if f, err := s.a.OpenBlob(c.Meta.Blob); err == nil {
		return &realFile{File: f, size: c.Meta.Size}, nil
	}
	return openCached(s.cache, s.a.Name(), c.Meta), nil
}
