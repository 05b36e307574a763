package daemon

import (
	"context"
	"errors"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/consensus"
	"github.com/realizefs/realize/internal/config"
	"github.com/realizefs/realize/internal/control"
	"github.com/realizefs/realize/nfs"
	"github.com/realizefs/realize/real"
	bolt "go.etcd.io/bbolt"
)

// Conflicts lists the contested paths of one arena or all: each path's
// current version, then the versions kept aside for it.
func (b *backend) Conflicts(ctx context.Context, arena realize.ArenaName) ([]control.ConflictRecord, error) {
	out := []control.ConflictRecord{}
	for _, ac := range b.config().Arenas {
		if arena != "" && ac.Name != arena {
			continue
		}
		err := b.db.View(func(tx *bolt.Tx) error {
			ix, err := real.OpenIndex(tx, ac.Name)
			if err != nil {
				return err
			}
			cs, err := ix.Conflicts("")
			if err != nil {
				return err
			}
			for i, c := range cs {
				if i == 0 || cs[i-1].Path != c.Path {
					cur, err := ix.Get(c.Path)
					if err != nil {
						return err
					}
					out = append(out, b.current(ac, c.Path, cur))
				}
				out = append(out, b.conflictRecord(ac, c.Path, c.Alternative))
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// current describes the version a contested path shows.
func (b *backend) current(ac config.Arena, path realize.Path, rec *real.Record) control.ConflictRecord {
	r := b.conflictRecord(ac, path, rec.Alternative())
	r.Current = true
	r.Local = rec != nil && !rec.Deleted && !rec.Unreal
	return r
}

// conflictRecord describes a version kept aside; Local says whether its
// bytes are kept on this peer.
func (b *backend) conflictRecord(ac config.Arena, path realize.Path, a realize.Alternative) control.ConflictRecord {
	r := control.ConflictRecord{Arena: ac.Name, Path: path, Version: real.VersionName(a), Origin: a.Origin,
		OriginName: b.peerName(a.Origin), Kind: a.Meta.Kind.String(), Target: a.Meta.Target}
	if a.Meta.Kind == realize.KindNone {
		r.Kind = "deleted"
	}
	if a.Meta.MTime != 0 {
		r.MTime = realizeTime(a.Meta.MTime)
	}
	if a.Meta.Kind == realize.KindFile {
		blob, size := a.Meta.Blob, a.Meta.Size
		r.Hash, r.Size = &blob, &size
		r.Local = real.KeptAside(ac.Dir, blob)
	}
	return r
}

// Resolve implements control.Backend.
func (b *backend) Resolve(ctx context.Context, req control.ResolveRequest) (*control.ResolveReport, error) {
	if b.d == nil || b.d.net == nil {
		return nil, errOffline("resolve")
	}
	a, path, err := b.d.resolve(req.Path)
	if err != nil {
		return nil, err
	}
	if path.IsRoot() {
		return nil, &realize.Error{Op: "resolve", Kind: realize.Invalid, Arena: a.Name(), Err: errors.New("name a contested path inside the arena (see realize conflicts)")}
	}
	ac, _ := b.config().Arena(a.Name())
	if ac == nil {
		return nil, &realize.Error{Op: "resolve", Kind: realize.NotExist, Arena: a.Name(), Err: errors.New("no such arena")}
	}
	r := consensus.Resolution{Copies: req.Copies, CopyName: b.copyName}
	if req.Keep != "" {
		if r.Keep, err = b.chosen(a, path, req.Keep); err != nil {
			return nil, err
		}
	}
	res, err := b.d.applier(a.Name()).Resolve(ctx, path, r)
	if err != nil {
		return nil, err
	}
	rec, err := a.Lookup(path)
	if err != nil {
		return nil, err
	}
	rep := &control.ResolveReport{Arena: a.Name(), Path: path, Kept: b.current(*ac, path, rec), Copies: res.Copies}
	for _, d := range res.Dropped {
		rep.Dropped = append(rep.Dropped, b.conflictRecord(*ac, path, d))
	}
	return rep, nil
}

// chosen finds the version named keep among the path's current version
// and those kept aside: nil for the current one.
func (b *backend) chosen(a *real.Arena, path realize.Path, keep string) (*realize.Alternative, error) {
	cs, err := a.ConflictsAt(path)
	if err != nil {
		return nil, err
	}
	if len(cs) == 0 {
		return nil, &realize.Error{Op: "resolve", Kind: realize.NotExist, Arena: a.Name(), Path: string(path), Err: errors.New("no conflict at this path")}
	}
	rec, err := a.Lookup(path)
	if err != nil {
		return nil, err
	}
	cur := rec.Alternative()
	versions := []realize.Alternative{cur}
	for _, c := range cs {
		versions = append(versions, c.Alternative)
	}
	v, err := consensus.FindVersion(path, versions, keep)
	if err != nil {
		var re *realize.Error
		if errors.As(err, &re) {
			re.Arena = a.Name()
		}
		return nil, err
	}
	if v.Origin == cur.Origin && v.Meta == cur.Meta {
		return nil, nil
	}
	return &v, nil
}

// copyName names a copy after the version's origin peer ("bravo"), or its
// short id when the name does not fit in a file name.
func (b *backend) copyName(path realize.Path, a realize.Alternative) (realize.Path, error) {
	if who := b.peerName(a.Origin); who != "" {
		if p, err := consensus.CopyPath(path, who, a.Meta.Blob); err == nil {
			return p, nil
		}
	}
	return consensus.CopyPath(path, a.Origin.Short(), a.Meta.Blob)
}

// applier returns the arena's applier (the one replication uses: it
// fetches from the household).
func (d *Daemon) applier(arena realize.ArenaName) *consensus.Applier {
	if s, ok := d.net.syncs[arena]; ok {
		return s.repl.Applier
	}
	return nil
}

// RemoveConflict implements nfs.Arena: deleting a version under
// conflicts/ drops it (a resolution keeping the others); deleting the
// last one clears the conflict.
func (s *shareArena) RemoveConflict(ctx context.Context, c nfs.ConflictVersion) error {
	cs, err := s.a.ConflictsAt(c.Path)
	if err != nil {
		return err
	}
	for _, k := range cs {
		if k.Meta.Kind == realize.KindFile && conflictName(k) == c.Name {
			ap := s.d.applier(s.a.Name())
			if ap == nil {
				return s.err("resolve", c.Path, realize.Unavailable, errors.New("arena not replicating"))
			}
			_, err := ap.Resolve(ctx, c.Path, consensus.Resolution{Drop: []realize.Alternative{k.Alternative}})
			return err
		}
	}
	return s.err("resolve", c.Path, realize.NotExist, errors.New("no such version kept aside"))
}
