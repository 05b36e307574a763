package daemon

import (
	"sync/atomic"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/nfs"
	"github.com/realizefs/realize/real"
	bolt "go.etcd.io/bbolt"
)

// nfsFollower is the indexers' observer: the NFS view follows what they
// record (moved handles, directories whose names changed), so kernels that
// cached it notice (docs/decisions/0014-kernel-caches.md). The arenas
// start before the NFS server: until it runs, listing changes concern no
// kernel, but moves are still applied to the handles kept in the database
// (kernels may hold them from before a restart).
type nfsFollower struct {
	srv atomic.Pointer[nfs.Server]
}

var _ real.Observer = (*nfsFollower)(nil)

func (f *nfsFollower) Moved(tx *bolt.Tx, a realize.ArenaName, from, to realize.Path, oldName bool) error {
	return nfs.MoveHandles(tx, a, from, to, oldName)
}

func (f *nfsFollower) Listed(a realize.ArenaName, dirs []realize.Path) {
	if s := f.srv.Load(); s != nil {
		s.Listed(a, dirs)
	}
}
