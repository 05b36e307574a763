package daemon

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/history"
	"github.com/realizefs/realize/household"
	"github.com/realizefs/realize/internal/config"
	"github.com/realizefs/realize/internal/control"
	"github.com/realizefs/realize/internal/store"
	"github.com/realizefs/realize/real"
	bolt "go.etcd.io/bbolt"
)

// backend answers the CLI from the database, and, inside a running daemon,
// from the live indexers. The same type serves `realize log` while the
// daemon is down (see NewOfflineBackend): then d is nil.
type backend struct {
	d    *Daemon // nil when offline
	cfg  *config.Config
	db   *store.DB
	self realize.PeerID
	log  *history.Log
}

func newBackend(d *Daemon) control.Backend {
	return &backend{d: d, cfg: d.cfg, db: d.db, self: d.id.ID(), log: history.New(d.id.ID(), nil, d.clock)}
}

// config returns the configuration in force: a running daemon follows
// edits of its config file (peer names change without a restart).
func (b *backend) config() *config.Config {
	if b.d != nil {
		return b.d.config()
	}
	return b.cfg
}

// NewOfflineBackend opens the data directory's database read-only, for
// read-only commands while no daemon runs. The database lock makes this
// fail with a Busy error while a daemon runs: the caller should then talk
// to the daemon. close releases the database.
func NewOfflineBackend(ctx context.Context, cfg *config.Config) (b control.Backend, close func(), err error) {
	db, err := store.Open(ctx, cfg.Data, store.Options{ReadOnly: true, SkipCheck: true})
	if err != nil {
		return nil, nil, err
	}
	self, err := db.Peer()
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return &backend{cfg: cfg, db: db, self: self, log: history.New(self, nil, nil)}, func() { db.Close() }, nil
}

// Status reports the daemon (when running) and every configured arena.
func (b *backend) Status(ctx context.Context) (*control.StatusReport, error) {
	rep := &control.StatusReport{Arenas: []control.ArenaStatus{}, Peers: []control.PeerStatus{}, Transfers: []control.TransferStatus{}}
	if b.d != nil {
		rep.Daemon = b.d.daemonStatus()
		if b.d.net != nil {
			rep.Peers = b.d.net.status()
		}
		rep.Cache = b.d.cacheStatus()
		rep.NFS, rep.NFSError = b.d.nfsAddr, b.d.nfsErr
		rep.Metrics, rep.MetricsError = b.d.metricsAddr, b.d.metricsErr
		rep.Transfers = b.d.xfers.list()
	} else {
		cfg := b.config()
		b.db.View(func(tx *bolt.Tx) error {
			for _, p := range cfg.Peers {
				ps := control.PeerStatus{Name: p.Name, Peer: p.Key, Address: p.Address}
				if seen, ok := b.log.Seen(tx, p.Key); ok {
					ps.Heard, ps.Inactive = seen, time.Since(seen) > cfg.History.InactiveAfter
				}
				rep.Peers = append(rep.Peers, ps)
			}
			return nil
		})
		rep.Daemon = control.DaemonStatus{Peer: b.self, Name: b.cfg.Name, DataDir: b.cfg.Data}
	}
	for _, ac := range b.config().Arenas {
		st, err := b.arenaStatus(ac)
		if err != nil {
			return nil, err
		}
		rep.Arenas = append(rep.Arenas, st)
	}
	return rep, nil
}

func (b *backend) arenaStatus(ac config.Arena) (control.ArenaStatus, error) {
	out := control.ArenaStatus{Name: ac.Name, Dir: ac.Dir, Pinned: ac.Pin}
	var live *real.Arena
	if b.d != nil && b.d.arenas != nil {
		if err := b.d.arenas.failed[ac.Name]; err != nil {
			out.Error = err.Error()
		}
		live = b.d.arenas.get(ac.Name)
		if b.d.net != nil {
			out.ReceivedBytes, out.ReusedBytes, out.RejectedBlocks = b.d.net.transfers(ac.Name)
		}
	}
	err := b.db.View(func(tx *bolt.Tx) error {
		ix, err := real.OpenIndex(tx, ac.Name)
		if err != nil {
			return err
		}
		c := ix.Counts()
		out.Files, out.Dirs, out.Symlinks, out.Bytes, out.UnrealFiles = c.Files, c.Dirs, c.Symlinks, c.Bytes, c.Unreal
		head, err := b.log.Head(tx, ac.Name, b.self)
		out.HistorySeq = head.Seq
		if err != nil {
			return err
		}
		hold, err := real.ReadHold(tx, ac.Name)
		out.Held = heldStatus(hold, ac)
		return err
	})
	if err != nil || live == nil {
		return out, err
	}
	st, err := live.Status()
	out.PendingHash, out.PendingBytes = st.PendingHash, st.PendingBytes
	out.Scanning, out.Watching, out.LastScan = st.Scanning, st.Watching, st.LastScan
	out.SettlingDeletes = st.SettlingDeletes
	for _, s := range st.Skipped {
		out.Skipped = append(out.Skipped, control.SkippedPath{Path: s.Path, Reason: s.Reason})
	}
	return out, err
}

// logPage bounds how many entries are read in one transaction while
// streaming: a slow reader must not hold a read transaction (and with it
// bbolt's remapping) for the whole log.
const logPage = 1024

// Log streams matching entries, log by log (arena, then peer), each in
// sequence order.
func (b *backend) Log(ctx context.Context, q control.LogQuery, emit func(*control.LogRecord) error) error {
	ids, err := b.logs(q)
	if err != nil {
		return err
	}
	for _, id := range ids {
		recs, err := b.readLog(ctx, id, q)
		if err != nil {
			return err
		}
		for _, r := range recs {
			if err := emit(r); err != nil {
				return err
			}
		}
	}
	return nil
}

// readLog reads one log's matching entries page by page. With a limit only
// the newest Limit entries are kept.
func (b *backend) readLog(ctx context.Context, id history.LogID, q control.LogQuery) ([]*control.LogRecord, error) {
	var out []*control.LogRecord
	next := uint64(0)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n := 0
		err := b.db.View(func(tx *bolt.Tx) error {
			return b.log.Scan(tx, id.Arena, id.Peer, next, func(e *realize.Entry, h realize.Hash) error {
				next = e.Seq + 1
				if n++; n > logPage {
					return history.ErrStop
				}
				if q.Since.IsZero() || !e.When().Before(q.Since) {
					out = append(out, b.record(e, h))
					if q.Limit > 0 && len(out) > 2*q.Limit {
						out = append(out[:0], out[len(out)-q.Limit:]...)
					}
				}
				return nil
			})
		})
		if err != nil {
			return nil, err
		}
		if n <= logPage {
			break
		}
		next-- // the entry that stopped the page was not consumed
	}
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[len(out)-q.Limit:]
	}
	return out, nil
}

// logs lists the logs a query selects.
func (b *backend) logs(q control.LogQuery) ([]history.LogID, error) {
	var ids []history.LogID
	err := b.db.View(func(tx *bolt.Tx) (err error) {
		ids, err = b.log.Logs(tx)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := ids[:0]
	for _, id := range ids {
		if (q.Arena == "" || id.Arena == q.Arena) && b.peerMatches(q.Peer, id.Peer) {
			out = append(out, id)
		}
	}
	return out, nil
}

// peerMatches accepts a peer's configured name, this peer's own name (or
// "self"), or a prefix of the hex key.
func (b *backend) peerMatches(sel string, p realize.PeerID) bool {
	switch {
	case sel == "":
		return true
	case sel == b.peerName(p):
		return true
	case sel == "self":
		return p == b.self
	}
	return len(sel) >= 4 && strings.HasPrefix(p.String(), strings.ToLower(sel))
}

func (b *backend) peerName(p realize.PeerID) string {
	cfg := b.config()
	if p == b.self {
		return cfg.Name
	}
	for _, pc := range cfg.Peers {
		if pc.Key == p {
			return pc.Name
		}
	}
	return ""
}

// record turns an entry into what the CLI prints.
func (b *backend) record(e *realize.Entry, h realize.Hash) *control.LogRecord {
	r := &control.LogRecord{
		Seq: e.Seq, Time: e.When().UTC(), Peer: e.Peer, PeerName: b.peerName(e.Peer), Origin: e.Origin,
		Arena: e.Arena, Op: e.Op.String(), Path: e.Path, From: e.From, Kind: e.Meta.Kind.String(),
		Exec: e.Meta.Exec, Target: e.Meta.Target, EntryHash: h,
	}
	if e.Meta.MTime != 0 {
		r.MTime = realizeTime(e.Meta.MTime)
	}
	if e.Meta.Kind == realize.KindFile {
		blob, size := e.Meta.Blob, e.Meta.Size
		r.Hash, r.Size = &blob, &size
	}
	if len(e.Version) > 0 {
		r.Version = make(map[string]uint64, len(e.Version))
		for p, n := range e.Version {
			r.Version[p.String()] = n
		}
	}
	return r
}

// Verify checks the chains and signatures of the selected logs and, for
// this peer's own logs, that the index agrees with the history.
func (b *backend) Verify(ctx context.Context, q control.LogQuery) (*control.VerifyReport, error) {
	ids, err := b.logs(q)
	if err != nil {
		return nil, err
	}
	rep := &control.VerifyReport{OK: true, Logs: []control.LogVerification{}}
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var v history.Verification
		b.db.View(func(tx *bolt.Tx) error {
			v = b.log.Verify(tx, id.Arena, id.Peer, household.Verify)
			return nil
		})
		if v.Err == nil && id.Peer == b.self {
			v.Err = real.CheckAgainstHistory(b.db, id.Arena, b.log, b.self)
		}
		lv := control.LogVerification{Arena: id.Arena, Peer: id.Peer, Entries: v.Entries, First: v.First, Head: v.Head, OK: v.Err == nil}
		if v.Err != nil {
			lv.Problem = v.Err.Error()
			rep.OK = false
		}
		rep.Logs = append(rep.Logs, lv)
	}
	if len(rep.Logs) == 0 && (q.Arena != "" || q.Peer != "") {
		return rep, &realize.Error{Op: "verify history", Kind: realize.NotExist, Arena: q.Arena, Err: errors.New("no log matches")}
	}
	return rep, nil
}

func realizeTime(ns int64) time.Time { return time.Unix(0, ns).UTC() }

// errOffline answers what only a running daemon can do.
func errOffline(op string) error {
	return &realize.Error{Op: op, Kind: realize.Unavailable, Err: errors.New("the daemon is not running (start it with realize daemon)")}
}

// Pin implements control.Backend.
func (b *backend) Pin(ctx context.Context, req control.PathRequest, progress func(*control.PinEvent) error) error {
	if b.d == nil || b.d.cache == nil {
		return errOffline("pin")
	}
	return b.d.pin(ctx, req, progress)
}

// Unpin implements control.Backend.
func (b *backend) Unpin(ctx context.Context, req control.PathRequest) (*control.UnpinReport, error) {
	if b.d == nil || b.d.cache == nil {
		return nil, errOffline("unpin")
	}
	return b.d.unpin(ctx, req)
}

// PathStatus implements control.Backend.
func (b *backend) PathStatus(ctx context.Context, path string) (*control.PathStatus, error) {
	if b.d == nil || b.d.cache == nil {
		return nil, errOffline("status")
	}
	return b.d.pathStatus(ctx, path)
}
