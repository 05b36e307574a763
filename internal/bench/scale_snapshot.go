package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/consensus"
	"github.com/realizefs/realize/history"
	"github.com/realizefs/realize/household"
	"github.com/realizefs/realize/internal/store"
	"github.com/realizefs/realize/real"
)

// scaleSnapshot times a catch-up by snapshot, in process: a new unpinned
// peer pulls from alpha's database as it would from a peer that trimmed
// its log away (every page is gone), so it takes the snapshot of every
// path, lists each file unreal, and finds nothing more to pull. alpha's
// daemon is not running yet: the database is read here directly.
func scaleSnapshot(ctx context.Context, o Options, a *daemonPeer, r *scaleRun) error {
	data := filepath.Join(a.base, "data")
	idA, err := household.LoadIdentity(household.KeyPath(data))
	if err != nil {
		return err
	}
	dbA, err := store.Open(ctx, data, store.Options{Peer: idA.ID(), SkipCheck: true})
	if err != nil {
		return err
	}
	defer dbA.Close()
	arenaA, err := real.NewArena(real.ArenaOptions{Name: "home", Root: a.arena, DB: dbA,
		Log: history.New(idA.ID(), idA, nil), Self: idA.ID()})
	if err != nil {
		return err
	}
	src := trimmedSource{consensus.LocalSource{DB: dbA, Log: history.New(idA.ID(), nil, nil), Arena: arenaA}}

	dir, err := freshDir(o, "scale-snapshot")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir) // a second copy of the index: do not keep it
	idB, err := household.NewIdentity(rand.Reader)
	if err != nil {
		return err
	}
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o700); err != nil {
		return err
	}
	dbB, err := store.Open(ctx, filepath.Join(dir, "data"), store.Options{Peer: idB.ID()})
	if err != nil {
		return err
	}
	defer dbB.Close()
	root := filepath.Join(dir, "home")
	if err := os.Mkdir(root, 0o755); err != nil {
		return err
	}
	logB := history.New(idB.ID(), idB, nil)
	arenaB, err := real.NewArena(real.ArenaOptions{Name: "home", Root: root, DB: dbB, Log: logB, Self: idB.ID()})
	if err != nil {
		return err
	}
	repl := &consensus.Replicator{DB: dbB, Log: logB, Self: idB.ID(), Arena: "home", Verify: household.Verify,
		Applier: &consensus.Applier{Arena: arenaB, Pinned: func(realize.Path) bool { return false }}}
	start := time.Now()
	if _, err := repl.Pull(ctx, src); err != nil {
		return err
	}
	r.snapshot = time.Since(start).Seconds()
	want, err := arenaA.Counts()
	if err != nil {
		return err
	}
	got, err := arenaB.Counts()
	if err != nil {
		return err
	}
	if repl.CatchUps.Load() != 1 || got.Files != want.Files || got.Unreal != want.Files {
		return fmt.Errorf("catch-up by snapshot: %d catch-ups, %d files (%d unreal) listed, want %d", repl.CatchUps.Load(), got.Files, got.Unreal, want.Files)
	}
	return nil
}

// trimmedSource is a source that kept none of its log: every page from a
// sequence number is gone (catch up by snapshot), and from its first kept
// entry on there is nothing.
type trimmedSource struct{ consensus.LocalSource }

func (s trimmedSource) Page(_ context.Context, arena realize.ArenaName, author realize.PeerID, from uint64) (*history.Page, error) {
	if from == 0 {
		return nil, nil
	}
	return nil, &realize.Error{Op: "read history page", Kind: realize.NotExist, Arena: arena, Peer: author}
}
