package nfs

import (
	"context"
	"os"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/real"
)

// view is one of the two trees the server exports.
type view byte

const (
	viewMerged view = 1 // read-write merged view at "/"
	viewAll    view = 2 // read-only all-files view at "/.all"
)

// ConflictsDir is the name of the export root's directory of kept-aside
// conflict versions.
const ConflictsDir = "conflicts"

// nodeKind says what an export path names.
type nodeKind uint8

const (
	nRoot         nodeKind = iota + 1 // the export root: one dir per arena + conflicts/
	nArena                            // a path of an arena (the arena root included)
	nConflicts                        // conflicts/
	nConflictDir                      // conflicts/<arena>[/<dirs of contested paths>]
	nConflictFile                     // conflicts/<arena>/<path>/<version>
)

// node is a resolved export path.
type node struct {
	kind  nodeKind
	xp    string // export path
	arena Arena  // nArena, nConflictDir, nConflictFile
	path  realize.Path
	cdir  string // nConflictDir: the path prefix below conflicts/<arena>/ ("" = the arena's dir)
	cv    ConflictVersion
	meta  realize.Meta
}

func (n *node) isDir() bool { return n.meta.Kind == realize.KindDir }

// splitPath turns a slash-separated path into validated components. Every
// name that arrives from the wire passes here (the wire filter rejects
// bad names earlier with a proper status; this is the guard that holds
// whatever go-nfs does).
func splitPath(p string) ([]string, error) {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c == "" {
			continue
		}
		if err := realize.CheckName(c); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func joinPath(parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		if p == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('/')
		}
		b.WriteString(p)
	}
	return b.String()
}

// reserved tells whether a name may not be created through the mount.
func reserved(name string) bool { return strings.HasPrefix(name, real.ReservedPrefix) }

func (s *Server) arena(name string) Arena {
	for _, a := range s.tree.Arenas() {
		if string(a.Name()) == name {
			return a
		}
	}
	return nil
}

// resolve finds what export path xp names.
func (s *Server) resolve(ctx context.Context, xp string) (*node, error) {
	comps, err := splitPath(xp)
	if err != nil {
		return nil, errno("lstat", xp, syscall.EINVAL)
	}
	xp = strings.Join(comps, "/")
	if len(comps) == 0 {
		return &node{kind: nRoot, meta: realize.Meta{Kind: realize.KindDir, MTime: s.started.UnixNano()}}, nil
	}
	if comps[0] == ConflictsDir {
		return s.resolveConflict(ctx, xp, comps[1:])
	}
	a := s.arena(comps[0])
	if a == nil {
		return nil, errno("lstat", xp, syscall.ENOENT)
	}
	p, err := realize.ParsePath(strings.Join(comps[1:], "/"))
	if err != nil {
		return nil, errno("lstat", xp, syscall.EINVAL)
	}
	n, err := a.Stat(ctx, p)
	if err != nil {
		if p.IsRoot() && realize.KindOf(err) == realize.NotExist {
			n = Node{Meta: realize.Meta{Kind: realize.KindDir, MTime: s.started.UnixNano()}}
		} else {
			return nil, pathErr("lstat", xp, err)
		}
	}
	if n.Meta.Kind == realize.KindNone {
		return nil, errno("lstat", xp, syscall.ENOENT)
	}
	nd := &node{kind: nArena, xp: xp, arena: a, path: p, meta: n.Meta}
	s.open.overlay(xp, &nd.meta)
	s.dirTimes.apply(xp, &nd.meta)
	return nd, nil
}

func (s *Server) resolveConflict(ctx context.Context, xp string, rest []string) (*node, error) {
	if len(rest) == 0 {
		return &node{kind: nConflicts, xp: xp, meta: realize.Meta{Kind: realize.KindDir, MTime: s.conflictsMTime()}}, nil
	}
	a := s.arena(rest[0])
	if a == nil {
		return nil, errno("lstat", xp, syscall.ENOENT)
	}
	vs, err := a.Conflicts(ctx)
	if err != nil {
		return nil, pathErr("lstat", xp, err)
	}
	r := strings.Join(rest[1:], "/")
	dir := &node{kind: nConflictDir, xp: xp, arena: a, cdir: r, meta: realize.Meta{Kind: realize.KindDir, MTime: s.conflictsMTime()}}
	if r == "" {
		return dir, nil
	}
	found := false
	for _, v := range vs {
		vp := string(v.Path) + "/" + v.Name
		if vp == r {
			m := v.Meta
			m.Kind = realize.KindFile
			return &node{kind: nConflictFile, xp: xp, arena: a, path: v.Path, cv: v, meta: m}, nil
		}
		if strings.HasPrefix(vp, r+"/") {
			found = true
			if v.Meta.MTime > dir.meta.MTime {
				dir.meta.MTime = v.Meta.MTime
			}
		}
	}
	if !found {
		return nil, errno("lstat", xp, syscall.ENOENT)
	}
	return dir, nil
}

// child is one entry of a directory listing.
type child struct {
	name string
	meta realize.Meta
}

// list returns the children of directory node n, sorted by name.
func (s *Server) list(ctx context.Context, n *node) ([]child, error) {
	var out []child
	switch n.kind {
	case nRoot:
		for _, a := range s.tree.Arenas() {
			name := string(a.Name())
			if name == ConflictsDir || strings.HasPrefix(name, ".") {
				continue
			}
			m := realize.Meta{Kind: realize.KindDir, MTime: s.started.UnixNano()}
			if rn, err := a.Stat(ctx, ""); err == nil && rn.Meta.Kind == realize.KindDir {
				m = rn.Meta
			}
			s.dirTimes.apply(name, &m)
			out = append(out, child{name, m})
		}
		out = append(out, child{ConflictsDir, realize.Meta{Kind: realize.KindDir, MTime: s.conflictsMTime()}})
	case nArena:
		if !n.isDir() {
			return nil, errno("readdir", n.xp, syscall.ENOTDIR)
		}
		nodes, err := n.arena.List(ctx, n.path)
		if err != nil {
			return nil, pathErr("readdir", n.xp, err)
		}
		for _, c := range nodes {
			name := c.Name.Base()
			if realize.CheckName(name) != nil || c.Meta.Kind == realize.KindNone {
				continue
			}
			m := c.Meta
			s.open.overlay(joinPath(n.xp, name), &m)
			s.dirTimes.apply(joinPath(n.xp, name), &m)
			out = append(out, child{name, m})
		}
	case nConflicts:
		for _, a := range s.tree.Arenas() {
			out = append(out, child{string(a.Name()), realize.Meta{Kind: realize.KindDir, MTime: s.conflictsMTime()}})
		}
	case nConflictDir:
		vs, err := n.arena.Conflicts(ctx)
		if err != nil {
			return nil, pathErr("readdir", n.xp, err)
		}
		seen := map[string]bool{}
		for _, v := range vs {
			vp := string(v.Path) + "/" + v.Name
			rem := vp
			if n.cdir != "" {
				if !strings.HasPrefix(vp, n.cdir+"/") {
					continue
				}
				rem = vp[len(n.cdir)+1:]
			}
			name, more, isDir := strings.Cut(rem, "/")
			_ = more
			if seen[name] || realize.CheckName(name) != nil {
				continue
			}
			seen[name] = true
			if isDir {
				out = append(out, child{name, realize.Meta{Kind: realize.KindDir, MTime: max(s.conflictsMTime(), v.Meta.MTime)}})
			} else {
				m := v.Meta
				m.Kind = realize.KindFile
				out = append(out, child{name, m})
			}
		}
	default:
		return nil, errno("readdir", n.xp, syscall.ENOTDIR)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

func (s *Server) conflictsMTime() int64 {
	return max(s.started.UnixNano(), s.conflictChange.Load())
}

// fileInfo is what go-nfs turns into NFS attributes. Sys carries the
// fileid (the handle id) and owner.
type fileInfo struct {
	name  string
	size  int64
	mode  os.FileMode
	mtime time.Time
	sys   *fileSys
}

func (f *fileInfo) Name() string       { return f.name }
func (f *fileInfo) Size() int64        { return f.size }
func (f *fileInfo) Mode() os.FileMode  { return f.mode }
func (f *fileInfo) ModTime() time.Time { return f.mtime }
func (f *fileInfo) IsDir() bool        { return f.mode.IsDir() }
func (f *fileInfo) Sys() any           { return f.sys.info() }

// modeOf is the mode shown for meta: directories 0755, files 0644 or 0755
// with the exec bit, symlinks 0777; conflict versions are read-only.
func modeOf(m realize.Meta, readOnly bool) os.FileMode {
	switch m.Kind {
	case realize.KindDir:
		return os.ModeDir | 0o755
	case realize.KindSymlink:
		return os.ModeSymlink | 0o777
	}
	mode := os.FileMode(0o644)
	if readOnly {
		mode = 0o444
	}
	if m.Exec {
		mode |= 0o111
	}
	return mode
}

func (s *Server) info(name string, m realize.Meta, id uint64, readOnly bool) *fileInfo {
	size := m.Size
	if m.Kind == realize.KindSymlink {
		size = int64(len(m.Target))
	} else if m.Kind == realize.KindDir {
		size = 4096
	}
	nlink := uint32(1)
	if m.Kind == realize.KindDir {
		nlink = 2
	}
	return &fileInfo{
		name:  name,
		size:  size,
		mode:  modeOf(m, readOnly),
		mtime: time.Unix(0, m.MTime),
		sys:   &fileSys{nlink: nlink, uid: s.uid, gid: s.gid, id: id},
	}
}
