package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/internal/control"
	"github.com/realizefs/realize/real"
	"github.com/realizefs/realize/unreal"
	"github.com/realizefs/realize/unreal/listing"
	bolt "go.etcd.io/bbolt"
)

// CacheDir is the cache's directory under the data directory.
const CacheDir = "cache"

// openCache opens the cache of unreal bytes, fetching from src.
func openCache(ctx context.Context, d *Daemon, src unreal.BlockSource) (*unreal.Cache, error) {
	cfg := d.config()
	return unreal.OpenCache(ctx, unreal.CacheOptions{
		DB: d.db, Dir: filepath.Join(cfg.Data, CacheDir), Source: src,
		Max: cfg.Cache.Max, Leave: cfg.Cache.Leave,
		OthersHold: d.othersHold, Clock: d.clock, Logger: d.log,
	})
}

// othersHold counts the peers other than this one known to hold blob,
// for the cache's eviction rule. A conflict loser's bytes count as held by
// nobody: they are kept until someone resolves the conflict (SPEC §4.5).
func (d *Daemon) othersHold(blob realize.Hash) int {
	if d.conflictBlobs.has(blob, d.clock.Now(), d.arenaList) {
		return 0
	}
	n := 0
	_ = d.db.View(func(tx *bolt.Tx) error {
		n = len(listing.Holders(tx, blob, d.id.ID()))
		return nil
	})
	return n
}

// conflictSet caches which blobs are conflict losers in any arena,
// refreshed at most every conflictRefresh: the cache asks for every
// eviction candidate and conflicts are rare and long-lived.
type conflictSet struct {
	mu    sync.Mutex
	at    time.Time
	blobs map[realize.Hash]bool
}

const conflictRefresh = 5 * time.Second

func (c *conflictSet) has(blob realize.Hash, now time.Time, arenas func() []*real.Arena) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.blobs == nil || now.Sub(c.at) > conflictRefresh {
		c.blobs, c.at = map[realize.Hash]bool{}, now
		for _, a := range arenas() {
			cs, _ := a.Conflicts("")
			for _, x := range cs {
				c.blobs[x.Meta.Blob] = true
			}
		}
	}
	return c.blobs[blob]
}

func (d *Daemon) arenaList() []*real.Arena {
	if d.arenas == nil {
		return nil
	}
	return d.arenas.list
}

// pinned tells whether path of arena is marked to be kept real here.
func (d *Daemon) pinned(arena realize.ArenaName, path realize.Path) bool {
	dflt := false
	if ac, ok := d.config().Arena(arena); ok {
		dflt = ac.Pin
	}
	m := listing.Unpin
	_ = d.db.View(func(tx *bolt.Tx) error {
		m, _ = listing.Effective(tx, arena, path, dflt)
		return nil
	})
	return m == listing.Pin
}

// resolve parses "arena:path" (the CLI turns paths in real directories
// and mounts into this form) and finds the running arena.
func (d *Daemon) resolve(s string) (*real.Arena, realize.Path, error) {
	name, rest, ok := strings.Cut(s, ":")
	if !ok {
		return nil, "", &realize.Error{Op: "resolve path", Kind: realize.Invalid, Path: s, Err: errors.New("want ARENA:PATH")}
	}
	arena, err := realize.ParseArenaName(name)
	if err != nil {
		return nil, "", err
	}
	p, err := realize.ParsePath(strings.Trim(rest, "/"))
	if err != nil {
		return nil, "", err
	}
	a := d.arenas.get(arena)
	if a == nil {
		return nil, "", &realize.Error{Op: "resolve path", Kind: realize.NotExist, Arena: arena, Err: errors.New("no such arena running here")}
	}
	return a, p, nil
}

func (d *Daemon) setMark(arena realize.ArenaName, path realize.Path, m listing.Mark) error {
	return d.db.Update(func(tx *bolt.Tx) error { return listing.SetMark(tx, arena, path, m) })
}

// pin marks each path pinned and realizes every unreal file below it.
func (d *Daemon) pin(ctx context.Context, req control.PathRequest, progress func(*control.PinEvent) error) error {
	for _, s := range req.Paths {
		a, path, err := d.resolve(s)
		if err != nil {
			return err
		}
		if err := d.setMark(a.Name(), path, listing.Pin); err != nil {
			return err
		}
		if err := d.realizeAll(ctx, a, path, progress); err != nil {
			return err
		}
	}
	return nil
}

func (d *Daemon) realizeAll(ctx context.Context, a *real.Arena, path realize.Path, show func(*control.PinEvent) error) error {
	files, err := a.UnrealUnder(path)
	if err != nil {
		return err
	}
	ev := &control.PinEvent{Arena: a.Name(), Path: path, Files: len(files)}
	metas := make([]realize.Meta, len(files))
	for i, p := range files {
		if rec, err := a.Lookup(p); err == nil && rec != nil {
			metas[i] = rec.Meta
			ev.Bytes += rec.Meta.Size
		}
	}
	// The pin is listed in `realize status` while it runs; its progress is
	// copied there at every event.
	xid, xt := d.xfers.start(control.TransferStatus{Kind: control.TransferPin, Arena: a.Name(), Path: path})
	defer d.xfers.end(xid)
	var blob realize.Hash
	progress := func(ev *control.PinEvent) error {
		d.xfers.pinProgress(xt, ev, blob)
		return show(ev)
	}
	if err := progress(ev); err != nil {
		return err
	}
	var before int64
	for i, p := range files {
		ev.Current = p
		m := metas[i]
		blob = m.Blob
		fill := func(ctx context.Context, f *os.File) error {
			return d.cache.Fill(ctx, a.Name(), m, f, func(done int64) {
				ev.BytesDone = before + done
				_ = progress(ev) // a CLI gone away does not stop the pin
			})
		}
		if err := a.Realize(ctx, p, fill); err != nil {
			if ctx.Err() != nil {
				return err
			}
			ev.Failed = append(ev.Failed, control.PathFailure{Arena: a.Name(), Path: p, Reason: err.Error()})
		}
		before += m.Size
		ev.FilesDone, ev.BytesDone = i+1, before
		if err := progress(ev); err != nil {
			return err
		}
	}
	ev.Done, ev.Current = true, ""
	return progress(ev)
}

// unpin marks each path unpinned and moves its real files into the cache,
// keeping those no other peer holds.
func (d *Daemon) unpin(ctx context.Context, req control.PathRequest) (*control.UnpinReport, error) {
	rep := &control.UnpinReport{Unpinned: []control.PathRef{}}
	for _, s := range req.Paths {
		a, path, err := d.resolve(s)
		if err != nil {
			return nil, err
		}
		if err := d.setMark(a.Name(), path, listing.Unpin); err != nil {
			return nil, err
		}
		rep.Unpinned = append(rep.Unpinned, control.PathRef{Arena: a.Name(), Path: path})
		files, err := a.RealUnder(path)
		if err != nil {
			return nil, err
		}
		for _, p := range files {
			var size int64
			err := a.Unrealize(ctx, p, d.allowUnreal, func(abs string, rec *real.Record, blocks realize.BlockMap) error {
				size = rec.Meta.Size
				return d.cache.Adopt(rec.Meta.Blob, rec.Meta.Size, blocks, abs)
			})
			if err != nil {
				rep.Kept = append(rep.Kept, control.PathFailure{Arena: a.Name(), Path: p, Reason: reason(err)})
				continue
			}
			rep.Files++
			rep.Bytes += size
		}
	}
	return rep, nil
}

// errLastCopy refuses to unpin the only copy the household has.
var errLastCopy = errors.New("no other peer holds this version: it stays real here (the last copy)")

func (d *Daemon) allowUnreal(rec *real.Record) error {
	if d.othersHold(rec.Meta.Blob) < 1 {
		return &realize.Error{Op: "unpin", Kind: realize.Conflict, Err: errLastCopy}
	}
	return nil
}

func reason(err error) string {
	var e *realize.Error
	if errors.As(err, &e) && e.Err != nil {
		return e.Err.Error()
	}
	return err.Error()
}

// pathStatus reports mark, local state and holders of one path.
func (d *Daemon) pathStatus(ctx context.Context, s string) (*control.PathStatus, error) {
	a, path, err := d.resolve(s)
	if err != nil {
		return nil, err
	}
	rec, err := a.Lookup(path)
	if err != nil {
		return nil, err
	}
	st := &control.PathStatus{Arena: a.Name(), Path: path, Kind: "none"}
	dflt := false
	if ac, ok := d.config().Arena(a.Name()); ok {
		dflt = ac.Pin
	}
	err = d.db.View(func(tx *bolt.Tx) error {
		m, from := listing.Effective(tx, a.Name(), path, dflt)
		st.Mark = m.String()
		if from != "" {
			st.MarkFrom = &from
		}
		if rec.IsReal() || rec.IsUnreal() {
			for _, p := range listing.PathHolders(tx, a.Name(), path, rec.Meta.Blob, d.id.ID()) {
				st.Holders = append(st.Holders, control.PeerRef{Peer: p, Name: d.peerName(p)})
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	switch {
	case path.IsRoot() || rec != nil && !rec.Deleted && rec.Meta.Kind == realize.KindDir:
		st.Kind = "dir"
		st.RealFiles, st.UnrealFiles, _ = a.CountUnder(path)
	case rec == nil || rec.Deleted:
		return nil, &realize.Error{Op: "status", Kind: realize.NotExist, Arena: a.Name(), Path: string(path), Err: errors.New("no such path")}
	case rec.Meta.Kind == realize.KindSymlink:
		st.Kind = "symlink"
	default:
		st.Kind, st.Size, st.MTime = "file", rec.Meta.Size, time.Unix(0, rec.Meta.MTime)
		h := rec.Meta.Blob
		st.Hash = &h
		st.State = "remote"
		if rec.IsReal() {
			st.State = "real"
			st.Holders = append([]control.PeerRef{{Peer: d.id.ID(), Name: d.config().Name}}, st.Holders...)
		} else if n, _ := d.cache.Present(h); n > 0 || rec.Meta.Size == 0 {
			st.State, st.CachedBytes = "cached", n
		}
	}
	return st, nil
}

func (d *Daemon) peerName(p realize.PeerID) string {
	for _, pc := range d.config().Peers {
		if pc.Key == p {
			return pc.Name
		}
	}
	return ""
}

// cacheStatus is the cache part of `realize status`.
func (d *Daemon) cacheStatus() *control.CacheStatus {
	if d.cache == nil {
		return nil
	}
	used, limit := d.cache.Usage()
	s := d.cache.Stats()
	return &control.CacheStatus{Dir: filepath.Join(d.config().Data, CacheDir), UsedBytes: used, LimitBytes: limit,
		FetchedBytes: s.Fetched, Hits: s.Hits, Misses: s.Misses, EvictedBytes: s.Evicted, RejectedBlocks: s.Rejected}
}
