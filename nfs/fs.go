package nfs

import (
	"context"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/go-git/go-billy/v5"
	"github.com/realizefs/realize"
	gonfs "github.com/willscott/go-nfs"
	"github.com/willscott/go-nfs/file"
)

type fileSys struct {
	nlink, uid, gid uint32
	id              uint64
}

func (f *fileSys) info() *file.FileInfo {
	return &file.FileInfo{Nlink: f.nlink, UID: f.uid, GID: f.gid, Fileid: f.id}
}

// mountFS is the billy filesystem go-nfs works on: one view, rooted at the
// mounted directory (rootID; its export path is looked up each time so a
// mount root renamed through NFS keeps working). Paths given to it are
// relative to that root. There is one mountFS per (view, root), so the
// pointer comparison go-nfs makes in RENAME holds for handles of one mount.
type mountFS struct {
	s      *Server
	view   view
	rootID uint64
}

var (
	_ billy.Filesystem = (*mountFS)(nil)
	_ billy.Change     = (*mountFS)(nil)
	_ billy.Capable    = (*mountFS)(nil)
)

func (m *mountFS) ctx() context.Context { return m.s.ctx }

func (m *mountFS) readOnly() bool { return m.view == viewAll }

// xpath turns a mount-relative name into an export path.
func (m *mountFS) xpath(name string) (string, error) {
	comps, err := splitPath(name)
	if err != nil {
		return "", errno("resolve", name, syscall.EINVAL)
	}
	root, ok, err := m.s.handles.path(m.rootID)
	if err != nil {
		return "", pathErr("resolve", name, err)
	}
	if !ok {
		return "", errno("resolve", name, syscall.ESTALE)
	}
	return joinPath(append([]string{root}, comps...)...), nil
}

func (m *mountFS) node(op, name string) (*node, error) {
	xp, err := m.xpath(name)
	if err != nil {
		return nil, err
	}
	n, err := m.s.resolve(m.ctx(), xp)
	if err != nil && m.view == viewAll && statusOf(err) == gonfs.NFSStatusNoEnt {
		if to, ok := m.s.alias(m.ctx(), xp); ok {
			xp = to
			n, err = m.s.resolve(m.ctx(), xp)
		}
	}
	if err != nil {
		return nil, pathErr(op, name, err)
	}
	n.xp = xp
	return n, nil
}

// Capabilities: the all-files view is read-only, which go-nfs turns into
// NFS3ERR_ROFS for every write.
func (m *mountFS) Capabilities() billy.Capability {
	if m.readOnly() {
		return billy.ReadCapability | billy.SeekCapability
	}
	return billy.DefaultCapabilities
}

func (m *mountFS) Join(elem ...string) string { return joinPath(elem...) }

func (m *mountFS) Root() string {
	root, _, _ := m.s.handles.path(m.rootID)
	return "/" + root
}

func (m *mountFS) Chroot(p string) (billy.Filesystem, error) {
	xp, err := m.xpath(p)
	if err != nil {
		return nil, err
	}
	id, err := m.s.handles.id(xp)
	if err != nil {
		return nil, pathErr("chroot", p, err)
	}
	return m.s.mountFS(m.view, id), nil
}

func (m *mountFS) Lstat(name string) (os.FileInfo, error) {
	n, err := m.node("lstat", name)
	if err != nil {
		return nil, err
	}
	id, err := m.s.handles.id(n.xp)
	if err != nil {
		return nil, pathErr("lstat", name, err)
	}
	base := name
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		base = name[i+1:]
	}
	return m.s.info(base, n.meta, id, n.kind == nConflictFile), nil
}

// Stat does not follow symlinks: a symlink is never followed by the server
// (its target may point out of the arena); clients resolve them.
func (m *mountFS) Stat(name string) (os.FileInfo, error) { return m.Lstat(name) }

func (m *mountFS) ReadDir(name string) ([]os.FileInfo, error) {
	n, err := m.node("readdir", name)
	if err != nil {
		return nil, err
	}
	if !n.isDir() {
		return nil, errno("readdir", name, syscall.ENOTDIR)
	}
	children, err := m.s.list(m.ctx(), n)
	if err != nil {
		return nil, pathErr("readdir", name, err)
	}
	xps := make([]string, len(children))
	for i, c := range children {
		xps[i] = joinPath(n.xp, c.name)
	}
	ids, err := m.s.handles.ensure(xps)
	if err != nil {
		return nil, pathErr("readdir", name, err)
	}
	out := make([]os.FileInfo, len(children))
	inConflicts := n.kind == nConflicts || n.kind == nConflictDir
	for i, c := range children {
		out[i] = m.s.info(c.name, c.meta, ids[i], inConflicts && c.meta.Kind == realize.KindFile)
	}
	return out, nil
}

func (m *mountFS) Readlink(name string) (string, error) {
	n, err := m.node("readlink", name)
	if err != nil {
		return "", err
	}
	if n.meta.Kind != realize.KindSymlink {
		return "", errno("readlink", name, syscall.EINVAL)
	}
	return n.meta.Target, nil
}

// Open opens for reading. The bytes are opened at the first ReadAt, so a
// failure to fetch them is an I/O error of the READ (go-nfs would turn an
// Open error into ACCES).
func (m *mountFS) Open(name string) (billy.File, error) {
	n, err := m.node("open", name)
	if err != nil {
		return nil, err
	}
	switch {
	case n.isDir():
		return nil, errno("open", name, syscall.EISDIR)
	case n.kind != nArena && n.kind != nConflictFile, n.meta.Kind != realize.KindFile:
		return nil, errno("open", name, syscall.EINVAL)
	}
	return &handleFile{m: m, name: name, n: n}, nil
}

// writable checks that n is a path of an arena that may be written to
// through this mount.
func (m *mountFS) writable(op, name string, n *node) error {
	if m.readOnly() {
		return errno(op, name, syscall.EROFS)
	}
	if n.kind != nArena {
		return errno(op, name, syscall.EACCES)
	}
	return nil
}

// OpenFile is go-nfs's open for WRITE and for SETATTR's truncation; its
// errors reach the client as they are, so they carry their NFS status.
func (m *mountFS) OpenFile(name string, flag int, _ os.FileMode) (billy.File, error) {
	if flag&os.O_CREATE != 0 {
		f, err := m.Create(name)
		return f, statusErr(err)
	}
	n, err := m.node("open", name)
	if err != nil {
		return nil, statusErr(err)
	}
	if flag&(os.O_WRONLY|os.O_RDWR) == 0 {
		return m.Open(name)
	}
	if err := m.writable("open", name, n); err != nil {
		return nil, statusErr(err)
	}
	if n.meta.Kind != realize.KindFile {
		return nil, statusErr(errno("open", name, syscall.EINVAL))
	}
	return &handleFile{m: m, name: name, n: n, write: true}, nil
}

// newChild resolves name's parent and checks that a child may be made
// there; it returns the arena and the child's arena path.
func (m *mountFS) newChild(op, name string) (*node, realize.Path, error) {
	if m.readOnly() {
		return nil, "", errno(op, name, syscall.EROFS)
	}
	xp, err := m.xpath(name)
	if err != nil {
		return nil, "", err
	}
	comps, _ := splitPath(xp)
	if len(comps) < 2 || comps[0] == ConflictsDir {
		return nil, "", errno(op, name, syscall.EACCES)
	}
	if reserved(comps[len(comps)-1]) {
		return nil, "", errno(op, name, syscall.EACCES)
	}
	a := m.s.arena(comps[0])
	if a == nil {
		return nil, "", errno(op, name, syscall.ENOENT)
	}
	p, err := realize.ParsePath(strings.Join(comps[1:], "/"))
	if err != nil {
		return nil, "", errno(op, name, syscall.EINVAL)
	}
	return &node{kind: nArena, xp: xp, arena: a, path: p}, p, nil
}

// Create creates name if it does not exist. Unlike os.Create it does not
// truncate an existing file: go-nfs calls it for every CREATE, including
// UNCHECKED ones of an existing file, which must keep its bytes (a
// truncation, when asked, arrives as a size in the CREATE's attributes).
func (m *mountFS) Create(name string) (billy.File, error) {
	n, p, err := m.newChild("create", name)
	if err != nil {
		return nil, err
	}
	e, err := m.s.open.writer(m.ctx(), n.xp, n.arena, p, true)
	if err != nil {
		return nil, pathErr("create", name, err)
	}
	m.s.open.release(e)
	n, err = m.node("create", name)
	if err != nil {
		return nil, err
	}
	if _, err := m.s.handles.id(n.xp); err != nil {
		return nil, pathErr("create", name, err)
	}
	return &handleFile{m: m, name: name, n: n, write: true}, nil
}

func (m *mountFS) TempFile(dir, prefix string) (billy.File, error) {
	return nil, errno("tempfile", dir, syscall.ENOTSUP)
}

// MkdirAll makes one directory (go-nfs checked the parent exists).
func (m *mountFS) MkdirAll(name string, _ os.FileMode) error {
	if n, err := m.node("mkdir", name); err == nil {
		if n.isDir() {
			return nil
		}
		return errno("mkdir", name, syscall.EEXIST)
	}
	n, p, err := m.newChild("mkdir", name)
	if err != nil {
		return err
	}
	if err := n.arena.Mkdir(m.ctx(), p); err != nil {
		return pathErr("mkdir", name, err)
	}
	_, err = m.s.handles.id(n.xp)
	return pathErr("mkdir", name, err)
}

func (m *mountFS) Symlink(target, link string) error {
	n, p, err := m.newChild("symlink", link)
	if err != nil {
		return err
	}
	if target == "" || len(target) > realize.MaxPathLen || strings.IndexByte(target, 0) >= 0 {
		return errno("symlink", link, syscall.EINVAL)
	}
	if err := n.arena.Symlink(m.ctx(), p, target); err != nil {
		return pathErr("symlink", link, err)
	}
	_, err = m.s.handles.id(n.xp)
	return pathErr("symlink", link, err)
}

// Remove removes a file, a symlink, an empty directory, or a conflict
// version (a resolution). Handles of the removed path become stale.
func (m *mountFS) Remove(name string) error {
	if m.readOnly() {
		return errno("remove", name, syscall.EROFS)
	}
	n, err := m.node("remove", name)
	if err != nil {
		return err
	}
	switch {
	case n.kind == nConflictFile:
		m.s.open.forget(n.xp)
		if err := n.arena.RemoveConflict(m.ctx(), n.cv); err != nil {
			return pathErr("remove", name, err)
		}
		m.s.conflictChanged()
	case n.kind != nArena || n.path.IsRoot():
		return errno("remove", name, syscall.EACCES)
	default:
		m.s.open.forget(n.xp)
		if err := n.arena.Remove(m.ctx(), n.path); err != nil {
			return pathErr("remove", name, err)
		}
	}
	return pathErr("remove", name, m.s.handles.forget(n.xp))
}

// Rename renames within one arena; the ids (and so the handles) of the
// renamed path and everything beneath it follow it.
func (m *mountFS) Rename(from, to string) error {
	if m.readOnly() {
		return errno("rename", from, syscall.EROFS)
	}
	fn, err := m.node("rename", from)
	if err != nil {
		return err
	}
	if err := m.writable("rename", from, fn); err != nil {
		return err
	}
	if fn.path.IsRoot() {
		return errno("rename", from, syscall.EACCES)
	}
	tn, tp, err := m.newChild("rename", to)
	if err != nil {
		return err
	}
	if tn.arena.Name() != fn.arena.Name() {
		return errno("rename", from, syscall.EXDEV)
	}
	if tp.HasPrefix(fn.path) {
		return errno("rename", from, syscall.EINVAL)
	}
	m.s.open.forget(fn.xp)
	m.s.open.forget(tn.xp)
	if err := fn.arena.Rename(m.ctx(), fn.path, tp); err != nil {
		return pathErr("rename", from, err)
	}
	return pathErr("rename", from, m.s.handles.rename(fn.xp, tn.xp))
}

// Chmod carries the exec bit of files; other mode bits are not kept
// (directories are always 0755, files 0644 or 0755).
func (m *mountFS) Chmod(name string, mode os.FileMode) error {
	n, err := m.node("chmod", name)
	if err != nil {
		return statusErr(err)
	}
	if err := m.writable("chmod", name, n); err != nil {
		return statusErr(err)
	}
	if n.meta.Kind != realize.KindFile {
		return nil
	}
	exec := mode&0o100 != 0
	if exec == n.meta.Exec {
		return nil
	}
	m.s.open.flush(n.xp)
	return statusErr(n.arena.SetAttr(m.ctx(), n.path, SetAttr{Exec: &exec}))
}

// Lchown and Chown: owners are not kept; every file belongs to the user
// running the daemon, and changing that is refused.
func (m *mountFS) Lchown(name string, uid, gid int) error {
	return statusErr(errno("chown", name, syscall.EPERM))
}

func (m *mountFS) Chown(name string, uid, gid int) error { return m.Lchown(name, uid, gid) }

func (m *mountFS) Chtimes(name string, _ time.Time, mtime time.Time) error {
	n, err := m.node("chtimes", name)
	if err != nil {
		return statusErr(err)
	}
	if err := m.writable("chtimes", name, n); err != nil {
		return statusErr(err)
	}
	m.s.open.flush(n.xp)
	t := mtime.UnixNano()
	return statusErr(n.arena.SetAttr(m.ctx(), n.path, SetAttr{MTime: &t}))
}

// maxFileSize is the largest file size the export announces (go-nfs's
// FSINFO maxfilesize). A WRITE or SETATTR size beyond it is refused with
// EFBIG (NFS3ERR_FBIG) before anything is opened: an unreal file is not
// fetched for a write that cannot succeed.
const maxFileSize = 1 << 62

// beyondMax tells whether n bytes at off end past maxFileSize. go-nfs
// casts WRITE offsets to int64: 2^63 and more arrive negative.
func beyondMax(off int64, n int) bool { return off < 0 || off > maxFileSize-int64(n) }

// handleFile is what go-nfs gets from Open/OpenFile/Create, once per RPC.
// The Tree's files behind it are shared and kept open between RPCs (see
// openFiles).
type handleFile struct {
	m      *mountFS
	name   string
	n      *node
	write  bool
	offset int64
	r      *readerEntry
	w      *writerEntry
	closed bool
}

func (f *handleFile) Name() string { return f.name }

func (f *handleFile) writer() (*writerEntry, error) {
	if f.w == nil {
		if !f.write {
			return nil, errno("write", f.name, syscall.EBADF)
		}
		w, err := f.m.s.open.writer(f.m.ctx(), f.n.xp, f.n.arena, f.n.path, false)
		if err != nil {
			return nil, err
		}
		f.w = w
	}
	return f.w, nil
}

func (f *handleFile) ReadAt(p []byte, off int64) (int, error) {
	if f.closed {
		return 0, os.ErrClosed
	}
	if w := f.m.s.open.openWriter(f.n.xp); w != nil {
		defer f.m.s.open.release(w)
		n, err := w.wf.ReadAt(p, off)
		if err != nil && err != io.EOF {
			return n, pathErr("read", f.name, err)
		}
		return n, err
	}
	if f.r == nil {
		r, err := f.m.s.open.reader(f.m.ctx(), f.n)
		if err != nil {
			return 0, pathErr("read", f.name, err)
		}
		f.r = r
	}
	n, err := f.r.rf.ReadAt(p, off)
	if err != nil && err != io.EOF {
		return n, pathErr("read", f.name, err)
	}
	return n, err
}

func (f *handleFile) Read(p []byte) (int, error) {
	n, err := f.ReadAt(p, f.offset)
	f.offset += int64(n)
	return n, err
}

func (f *handleFile) Write(p []byte) (int, error) {
	if beyondMax(f.offset, len(p)) {
		return 0, errno("write", f.name, syscall.EFBIG)
	}
	w, err := f.writer()
	if err != nil {
		return 0, pathErr("write", f.name, err)
	}
	n, err := w.writeAt(p, f.offset)
	f.offset += int64(n)
	if err != nil {
		return n, pathErr("write", f.name, err)
	}
	return n, nil
}

func (f *handleFile) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += f.offset
	case io.SeekEnd:
		offset += f.n.meta.Size
	}
	if offset < 0 && whence == io.SeekStart {
		// go-nfs seeking to a WRITE's offset of 2^63 or more: kept for
		// Write to refuse with EFBIG (a Seek error would be NFS3ERR_IO).
		f.offset = offset
		return offset, nil
	}
	if offset < 0 {
		return 0, errno("seek", f.name, syscall.EINVAL)
	}
	f.offset = offset
	return offset, nil
}

// Truncate is SETATTR's size: through the open writer if there is one,
// else as a SetAttr of the Tree (which realizes an unreal file first).
func (f *handleFile) Truncate(size int64) error {
	if !f.write {
		return statusErr(errno("truncate", f.name, syscall.EBADF))
	}
	if beyondMax(size, 0) {
		return statusErr(errno("truncate", f.name, syscall.EFBIG))
	}
	if w := f.m.s.open.openWriter(f.n.xp); w != nil {
		defer f.m.s.open.release(w)
		return statusErr(w.truncate(size))
	}
	f.m.s.open.forget(f.n.xp)
	return statusErr(f.n.arena.SetAttr(f.m.ctx(), f.n.path, SetAttr{Size: &size}))
}

func (f *handleFile) Close() error {
	if f.closed {
		return nil
	}
	f.closed = true
	if f.r != nil {
		f.m.s.open.releaseReader(f.r)
	}
	if f.w != nil {
		f.m.s.open.release(f.w)
	}
	return nil
}

func (f *handleFile) Lock() error   { return nil }
func (f *handleFile) Unlock() error { return nil }
