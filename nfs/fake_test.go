package nfs

import (
	"context"
	"errors"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/realizefs/realize"
)

// fakeTree is an in-memory Tree: maps of nodes and bytes per arena,
// conflict versions, and "unreal" files whose Open fails Unavailable.
type fakeTree struct {
	mu     sync.Mutex
	arenas []*fakeArena
	stat   FSStat
}

type fakeNode struct {
	meta realize.Meta
	data []byte
}

type fakeArena struct {
	t           *fakeTree
	name        realize.ArenaName
	nodes       map[realize.Path]*fakeNode
	conflicts   []ConflictVersion
	cbytes      map[string][]byte // by Path + "/" + Name
	unavailable map[realize.Path]bool
	hidden      map[realize.Path]bool // Hidden (an overlay whiteout in the real directory)
	opens       int                   // Open calls (tests of the reader cache)
	writeCloses int
}

func newFakeTree(names ...string) *fakeTree {
	t := &fakeTree{stat: FSStat{TotalBytes: 100 << 30, FreeBytes: 40 << 30, AvailBytes: 30 << 30, TotalFiles: 1000, FreeFiles: 900}}
	for _, n := range names {
		t.arenas = append(t.arenas, &fakeArena{t: t, name: realize.ArenaName(n), nodes: map[realize.Path]*fakeNode{},
			cbytes: map[string][]byte{}, unavailable: map[realize.Path]bool{}})
	}
	return t
}

func (t *fakeTree) arena(name string) *fakeArena {
	for _, a := range t.arenas {
		if string(a.name) == name {
			return a
		}
	}
	return nil
}

func (t *fakeTree) Arenas() []Arena {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Arena, len(t.arenas))
	for i, a := range t.arenas {
		out[i] = a
	}
	return out
}

func (t *fakeTree) FSStat(context.Context) (FSStat, error) { return t.stat, nil }

var fakeTime = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC).UnixNano()

// helpers for tests (take the lock)
func (a *fakeArena) putFile(p string, data []byte, exec bool) {
	a.t.mu.Lock()
	defer a.t.mu.Unlock()
	a.mkparents(realize.Path(p))
	a.nodes[realize.Path(p)] = &fakeNode{meta: realize.Meta{Kind: realize.KindFile, Size: int64(len(data)), MTime: fakeTime, Exec: exec}, data: data}
}

func (a *fakeArena) putDir(p string) {
	a.t.mu.Lock()
	defer a.t.mu.Unlock()
	a.mkparents(realize.Path(p))
	a.nodes[realize.Path(p)] = &fakeNode{meta: realize.Meta{Kind: realize.KindDir, MTime: fakeTime}}
}

func (a *fakeArena) mkparents(p realize.Path) {
	for d := p.Dir(); d != ""; d = d.Dir() {
		if a.nodes[d] == nil {
			a.nodes[d] = &fakeNode{meta: realize.Meta{Kind: realize.KindDir, MTime: fakeTime}}
		}
	}
}

func (a *fakeArena) get(p string) *fakeNode {
	a.t.mu.Lock()
	defer a.t.mu.Unlock()
	n := a.nodes[realize.Path(p)]
	if n == nil {
		return nil
	}
	c := *n
	c.data = append([]byte(nil), n.data...)
	return &c
}

func (a *fakeArena) addConflict(p, name string, data []byte) {
	a.t.mu.Lock()
	defer a.t.mu.Unlock()
	a.conflicts = append(a.conflicts, ConflictVersion{Path: realize.Path(p), Name: name,
		Meta: realize.Meta{Kind: realize.KindFile, Size: int64(len(data)), MTime: fakeTime}})
	a.cbytes[p+"/"+name] = data
}

func fErr(op string, k realize.ErrKind, p realize.Path) error {
	return &realize.Error{Op: op, Kind: k, Path: string(p)}
}

func (a *fakeArena) Name() realize.ArenaName { return a.name }

func (a *fakeArena) Hidden(_ context.Context, p realize.Path) bool {
	a.t.mu.Lock()
	defer a.t.mu.Unlock()
	return a.hidden[p]
}

func (a *fakeArena) hide(p realize.Path, on bool) {
	a.t.mu.Lock()
	defer a.t.mu.Unlock()
	if a.hidden == nil {
		a.hidden = map[realize.Path]bool{}
	}
	a.hidden[p] = on
}

func (a *fakeArena) Stat(_ context.Context, p realize.Path) (Node, error) {
	a.t.mu.Lock()
	defer a.t.mu.Unlock()
	if p.IsRoot() {
		return Node{Meta: realize.Meta{Kind: realize.KindDir, MTime: fakeTime}}, nil
	}
	n := a.nodes[p]
	if n == nil {
		return Node{}, fErr("stat", realize.NotExist, p)
	}
	return Node{Name: p, Meta: n.meta, Real: true}, nil
}

func (a *fakeArena) List(_ context.Context, dir realize.Path) ([]Node, error) {
	a.t.mu.Lock()
	defer a.t.mu.Unlock()
	if !dir.IsRoot() {
		n := a.nodes[dir]
		if n == nil {
			return nil, fErr("list", realize.NotExist, dir)
		}
		if n.meta.Kind != realize.KindDir {
			return nil, fErr("list", realize.NotDir, dir)
		}
	}
	var out []Node
	for p, n := range a.nodes {
		if p.Dir() == dir && p != dir {
			out = append(out, Node{Name: realize.Path(p.Base()), Meta: n.meta})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// fakeReader fails, like the daemon's reads of unreal files, only when
// bytes of the file are asked for while it is unavailable.
type fakeReader struct {
	data []byte
	a    *fakeArena
	p    realize.Path
}

func (r *fakeReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(r.data)) {
		return 0, io.EOF
	}
	if r.a != nil && len(p) > 0 && r.unavailable() {
		return 0, &realize.Error{Op: "fetch", Kind: realize.Unavailable, Path: string(r.p), Err: errors.New("no peer has the blocks")}
	}
	n := copy(p, r.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
func (r *fakeReader) unavailable() bool {
	r.a.t.mu.Lock()
	defer r.a.t.mu.Unlock()
	return r.a.unavailable[r.p]
}

func (r *fakeReader) Close() error { return nil }
func (r *fakeReader) Size() int64  { return int64(len(r.data)) }

func (a *fakeArena) Open(_ context.Context, p realize.Path) (ReadFile, error) {
	a.t.mu.Lock()
	defer a.t.mu.Unlock()
	a.opens++
	n := a.nodes[p]
	if n == nil {
		return nil, fErr("open", realize.NotExist, p)
	}
	if n.meta.Kind != realize.KindFile {
		return nil, fErr("open", realize.IsDir, p)
	}
	return &fakeReader{data: append([]byte(nil), n.data...), a: a, p: p}, nil
}

type fakeWriter struct {
	a *fakeArena
	p realize.Path
}

func (w *fakeWriter) node() (*fakeNode, error) {
	n := w.a.nodes[w.p]
	if n == nil {
		return nil, fErr("write", realize.NotExist, w.p)
	}
	return n, nil
}

func (w *fakeWriter) ReadAt(b []byte, off int64) (int, error) {
	w.a.t.mu.Lock()
	defer w.a.t.mu.Unlock()
	n, err := w.node()
	if err != nil {
		return 0, err
	}
	return (&fakeReader{data: n.data}).ReadAt(b, off)
}

func (w *fakeWriter) WriteAt(b []byte, off int64) (int, error) {
	w.a.t.mu.Lock()
	defer w.a.t.mu.Unlock()
	n, err := w.node()
	if err != nil {
		return 0, err
	}
	if end := off + int64(len(b)); end > int64(len(n.data)) {
		n.data = append(n.data, make([]byte, end-int64(len(n.data)))...)
	}
	copy(n.data[off:], b)
	n.meta.Size = int64(len(n.data))
	n.meta.MTime = time.Now().UnixNano()
	return len(b), nil
}

func (w *fakeWriter) Truncate(size int64) error {
	w.a.t.mu.Lock()
	defer w.a.t.mu.Unlock()
	n, err := w.node()
	if err != nil {
		return err
	}
	n.truncate(size)
	return nil
}

func (n *fakeNode) truncate(size int64) {
	if size <= int64(len(n.data)) {
		n.data = n.data[:size]
	} else {
		n.data = append(n.data, make([]byte, size-int64(len(n.data)))...)
	}
	n.meta.Size = size
	n.meta.MTime = time.Now().UnixNano()
}

func (w *fakeWriter) Sync() error { return nil }
func (w *fakeWriter) Close() error {
	w.a.t.mu.Lock()
	defer w.a.t.mu.Unlock()
	w.a.writeCloses++
	return nil
}

func (a *fakeArena) parentDir(p realize.Path) error {
	if d := p.Dir(); !d.IsRoot() {
		n := a.nodes[d]
		if n == nil {
			return fErr("parent", realize.NotExist, d)
		}
		if n.meta.Kind != realize.KindDir {
			return fErr("parent", realize.NotDir, d)
		}
	}
	return nil
}

func (a *fakeArena) OpenWrite(_ context.Context, p realize.Path, create, truncate bool) (WriteFile, error) {
	a.t.mu.Lock()
	defer a.t.mu.Unlock()
	if err := a.parentDir(p); err != nil {
		return nil, err
	}
	n := a.nodes[p]
	switch {
	case n == nil && !create:
		return nil, fErr("open", realize.NotExist, p)
	case n == nil:
		a.nodes[p] = &fakeNode{meta: realize.Meta{Kind: realize.KindFile, MTime: time.Now().UnixNano()}}
	case n.meta.Kind == realize.KindDir:
		return nil, fErr("open", realize.IsDir, p)
	case n.meta.Kind != realize.KindFile:
		return nil, fErr("open", realize.Invalid, p)
	case truncate:
		n.truncate(0)
	}
	delete(a.unavailable, p) // realized
	return &fakeWriter{a: a, p: p}, nil
}

func (a *fakeArena) Mkdir(_ context.Context, p realize.Path) error {
	a.t.mu.Lock()
	defer a.t.mu.Unlock()
	if err := a.parentDir(p); err != nil {
		return err
	}
	if a.nodes[p] != nil {
		return fErr("mkdir", realize.Exist, p)
	}
	a.nodes[p] = &fakeNode{meta: realize.Meta{Kind: realize.KindDir, MTime: time.Now().UnixNano()}}
	return nil
}

func (a *fakeArena) Symlink(_ context.Context, p realize.Path, target string) error {
	a.t.mu.Lock()
	defer a.t.mu.Unlock()
	if err := a.parentDir(p); err != nil {
		return err
	}
	if a.nodes[p] != nil {
		return fErr("symlink", realize.Exist, p)
	}
	a.nodes[p] = &fakeNode{meta: realize.Meta{Kind: realize.KindSymlink, Target: target, MTime: time.Now().UnixNano()}}
	return nil
}

func (a *fakeArena) hasChildren(p realize.Path) bool {
	for q := range a.nodes {
		if q != p && q.HasPrefix(p) {
			return true
		}
	}
	return false
}

func (a *fakeArena) Remove(_ context.Context, p realize.Path) error {
	a.t.mu.Lock()
	defer a.t.mu.Unlock()
	n := a.nodes[p]
	if n == nil {
		return fErr("remove", realize.NotExist, p)
	}
	if n.meta.Kind == realize.KindDir && a.hasChildren(p) {
		return fErr("remove", realize.NotEmpty, p)
	}
	delete(a.nodes, p)
	return nil
}

func (a *fakeArena) Rename(_ context.Context, from, to realize.Path) error {
	a.t.mu.Lock()
	defer a.t.mu.Unlock()
	n := a.nodes[from]
	if n == nil {
		return fErr("rename", realize.NotExist, from)
	}
	if err := a.parentDir(to); err != nil {
		return err
	}
	if d := a.nodes[to]; d != nil {
		if d.meta.Kind == realize.KindDir && a.hasChildren(to) {
			return fErr("rename", realize.NotEmpty, to)
		}
		delete(a.nodes, to)
	}
	moved := map[realize.Path]*fakeNode{}
	for q, m := range a.nodes {
		if q.HasPrefix(from) {
			moved[to+q[len(from):]] = m
			delete(a.nodes, q)
		}
	}
	for q, m := range moved {
		a.nodes[q] = m
	}
	return nil
}

func (a *fakeArena) SetAttr(_ context.Context, p realize.Path, s SetAttr) error {
	a.t.mu.Lock()
	defer a.t.mu.Unlock()
	n := a.nodes[p]
	if n == nil {
		return fErr("setattr", realize.NotExist, p)
	}
	if s.Size != nil {
		if n.meta.Kind != realize.KindFile {
			return fErr("setattr", realize.Invalid, p)
		}
		n.truncate(*s.Size)
		delete(a.unavailable, p)
	}
	if s.MTime != nil {
		n.meta.MTime = *s.MTime
	}
	if s.Exec != nil {
		n.meta.Exec = *s.Exec
	}
	return nil
}

func (a *fakeArena) Conflicts(context.Context) ([]ConflictVersion, error) {
	a.t.mu.Lock()
	defer a.t.mu.Unlock()
	return append([]ConflictVersion(nil), a.conflicts...), nil
}

func (a *fakeArena) OpenConflict(_ context.Context, c ConflictVersion) (ReadFile, error) {
	a.t.mu.Lock()
	defer a.t.mu.Unlock()
	b, ok := a.cbytes[string(c.Path)+"/"+c.Name]
	if !ok {
		return nil, fErr("open conflict", realize.NotExist, c.Path)
	}
	return &fakeReader{data: b}, nil
}

func (a *fakeArena) RemoveConflict(_ context.Context, c ConflictVersion) error {
	a.t.mu.Lock()
	defer a.t.mu.Unlock()
	for i, v := range a.conflicts {
		if v.Path == c.Path && v.Name == c.Name {
			a.conflicts = append(a.conflicts[:i], a.conflicts[i+1:]...)
			delete(a.cbytes, string(c.Path)+"/"+c.Name)
			return nil
		}
	}
	return fErr("remove conflict", realize.NotExist, c.Path)
}

func metaSymlink(target string) realize.Meta {
	return realize.Meta{Kind: realize.KindSymlink, Target: target, MTime: fakeTime}
}
