package nfs

import (
	"errors"
	"sync"
	"time"

	"github.com/realizefs/realize"
	bolt "go.etcd.io/bbolt"
)

// Following changes made elsewhere than through NFS (the indexer, other
// peers, pin and unpin), so that a kernel that cached what it was shown
// notices them (docs/decisions/0014-kernel-caches.md):
//
//   - handles follow moves: a file handle names an object, so after a
//     directory is moved its handle (and those of everything below it)
//     must reach the new place, or a process working in it gets errors;
//   - a directory whose list of names changed shows a new mtime (NFSv3's
//     ctime, which go-nfs sets to the mtime, is what Linux compares to
//     decide that its cached listing and its cached lookups of names in
//     that directory, absent ones included, must be checked again).

// MoveHandles moves the file handles of from (in arena a) and of
// everything beneath it to to, within tx: the index's move and the
// handles' move commit together, so no request sees the one without the
// other. A database without NFS handles has nothing to move.
//
// oldName says the kernel may go on looking the directory up under its
// old name (a directory moved through an overlay mount): the all-files
// view then answers for the old name with the moved directory's handle,
// for as long as the old name is hidden in the real directory (alias.go).
func MoveHandles(tx *bolt.Tx, a realize.ArenaName, from, to realize.Path, oldName bool) error {
	if from.IsRoot() || to.IsRoot() {
		return &realize.Error{Op: "nfs move handles", Kind: realize.Invalid, Arena: a, Err: errors.New("arena root")}
	}
	if ids, _ := buckets(tx); ids == nil {
		return nil
	}
	fx, tx2 := joinPath(string(a), string(from)), joinPath(string(a), string(to))
	err := renameIn(tx, fx, tx2)
	if err == nil && oldName {
		err = addAlias(tx, fx, tx2)
	}
	if err != nil {
		return &realize.Error{Op: "nfs move handles", Kind: realize.IO, Arena: a, Path: string(from), Err: err}
	}
	return nil
}

// dirTimes are the times at which directories' lists of names last
// changed without their real directory's mtime changing (an unreal file
// added or removed), by export path. Memory only: after a restart the
// shown mtime goes back to the real one, which is a change too.
type dirTimes struct {
	mu sync.Mutex
	t  map[string]int64
}

// bump records a change of xp's names now, strictly after the last one.
func (d *dirTimes) bump(xp string, now int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.t == nil {
		d.t = map[string]int64{}
	}
	if last := d.t[xp]; now <= last {
		now = last + 1
	}
	d.t[xp] = now
}

// apply raises a directory's shown mtime to its last change of names.
func (d *dirTimes) apply(xp string, m *realize.Meta) {
	if m.Kind != realize.KindDir {
		return
	}
	d.mu.Lock()
	t := d.t[xp]
	d.mu.Unlock()
	if t > m.MTime {
		m.MTime = t
	}
}

// Listed tells the server that the names in these directories of arena a
// changed: each shows a new mtime from now on.
func (s *Server) Listed(a realize.ArenaName, dirs []realize.Path) {
	now := time.Now().UnixNano()
	for _, d := range dirs {
		s.dirTimes.bump(joinPath(string(a), string(d)), now)
	}
}
