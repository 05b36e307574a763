// Package store opens the one bbolt database a peer keeps in its data
// directory, and guards it: an exclusive file lock (a second daemon on the
// same data directory is refused), a magic and schema version (a foreign or
// newer database is refused, never "repaired"), the peer the database belongs
// to (a swapped key is refused), and a structural check at open that turns
// corruption into an error instead of a panic later.
//
// Each package owns its own top-level buckets (see docs/storage.md): store
// owns "meta"; real owns "index" and "blobs"; history owns "history". They
// share one file so that recording a change — index update plus history
// entry — is one transaction, committed (and fsynced) as one.
package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/realizefs/realize"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// FileName is the database file inside the data directory.
const FileName = "realize.db"

// Magic identifies a Realize database; SchemaVersion is the layout version
// documented in docs/storage.md. A database with a higher version was
// written by a newer Realize and is refused.
const (
	Magic         = "realize-db"
	SchemaVersion = 2
)

var (
	bucketMeta  = []byte("meta")
	keyMagic    = []byte("magic")
	keySchema   = []byte("schema")
	keyPeer     = []byte("peer")
	keyCreated  = []byte("created")
	lockTimeout = 200 * time.Millisecond
)

// Options tune Open.
type Options struct {
	// ReadOnly opens with a shared lock and never writes: for inspecting a
	// data directory whose daemon is not running.
	ReadOnly bool
	// Peer is the identity the database must belong to. A new database is
	// stamped with it. Zero skips the check (read-only tools).
	Peer realize.PeerID
	// SkipCheck skips the structural check at open (benchmarks).
	SkipCheck bool
}

// DB is an open Realize database. Its bbolt file can be replaced by a
// compacted copy while it is in use (Compact), so the bbolt handle is
// reached only through View and Update.
type DB struct {
	cur atomic.Pointer[bolt.DB]
	// writers is held shared by every Update and exclusively by Compact
	// while it checks that its copy is current and swaps it in: no write
	// can land in the old file after that. Readers never take it.
	writers    sync.RWMutex
	compacting sync.Mutex // one Compact at a time
	path       string
}

// View runs fn in a read-only transaction.
func (d *DB) View(fn func(*bolt.Tx) error) error {
	for {
		b := d.cur.Load()
		err := b.View(fn)
		// A compaction closed the file between Load and Begin: the
		// transaction never started; run it on the new one.
		if errors.Is(err, berrors.ErrDatabaseNotOpen) && d.cur.Load() != b {
			continue
		}
		return err
	}
}

// Update runs fn in a read-write transaction, committed (and synced to
// disk) when fn returns nil.
func (d *DB) Update(fn func(*bolt.Tx) error) error {
	d.writers.RLock()
	defer d.writers.RUnlock()
	return d.cur.Load().Update(fn)
}

// Close closes the database file, after the transactions in progress.
func (d *DB) Close() error {
	d.writers.Lock()
	defer d.writers.Unlock()
	return d.cur.Load().Close()
}

// Open opens (creating if needed, unless read-only) the database in dataDir.
func Open(ctx context.Context, dataDir string, opt Options) (db *DB, err error) {
	path := filepath.Join(dataDir, FileName)
	const op = "open database"
	if opt.ReadOnly {
		if _, err := os.Stat(path); err != nil {
			return nil, &realize.Error{Op: op, Kind: realize.NotExist, Path: path, Err: err}
		}
	}
	// bbolt panics on some kinds of corrupted pages; a corrupt file must be
	// an error the user can act on, not a crash.
	var bdb *bolt.DB
	defer func() {
		if r := recover(); r != nil {
			if bdb != nil {
				bdb.Close() // release the lock; the mapping is useless now
			}
			db = nil
			err = &realize.Error{Op: op, Kind: realize.Corrupt, Path: path, Err: fmt.Errorf("database is damaged (%v); move it aside to rebuild the index from the real directories", r)}
		}
	}()
	bdb, err = bolt.Open(path, 0o600, boltOptions(opt.ReadOnly))
	if err != nil {
		return nil, classifyOpenError(op, path, err)
	}
	if !opt.ReadOnly {
		// A compaction killed before its copy was swapped in left this;
		// the database itself is whole (see compact.go).
		if err := os.Remove(compactPath(path)); err != nil && !errors.Is(err, os.ErrNotExist) {
			bdb.Close()
			return nil, &realize.Error{Op: op, Kind: realize.IO, Path: path, Err: err}
		}
	}
	d := &DB{path: path}
	d.cur.Store(bdb)
	if err := d.initMeta(opt); err != nil {
		bdb.Close()
		return nil, err
	}
	if !opt.SkipCheck {
		if err := d.check(ctx); err != nil {
			bdb.Close()
			return nil, err
		}
	}
	return d, nil
}

func boltOptions(readOnly bool) *bolt.Options {
	return &bolt.Options{
		Timeout:  lockTimeout,
		ReadOnly: readOnly,
		// The freelist is synced: without it bbolt rebuilds it at open by
		// walking every page in a goroutine of its own, where a damaged page
		// panics beyond any recover of ours.
		FreelistType: bolt.FreelistMapType,
	}
}

func classifyOpenError(op, path string, err error) error {
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return &realize.Error{Op: op, Kind: realize.Busy, Path: path,
			Err: errors.New("the data directory is in use by another realize daemon")}
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
		return &realize.Error{Op: op, Kind: realize.Corrupt, Path: path,
			Err: fmt.Errorf("%v: not a Realize database or damaged; move it aside to rebuild", err)}
	case errors.Is(err, os.ErrPermission):
		return &realize.Error{Op: op, Kind: realize.Permission, Path: path, Err: err}
	}
	return &realize.Error{Op: op, Kind: realize.IO, Path: path, Err: err}
}

// initMeta stamps a new database or validates an existing one.
func (d *DB) initMeta(opt Options) error {
	const op = "open database"
	check := func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			if tx.Writable() && isEmpty(tx) {
				return d.stamp(tx, opt.Peer)
			}
			return &realize.Error{Op: op, Kind: realize.Corrupt, Path: d.path,
				Err: errors.New("not a Realize database (no meta bucket)")}
		}
		if string(meta.Get(keyMagic)) != Magic {
			return &realize.Error{Op: op, Kind: realize.Corrupt, Path: d.path,
				Err: errors.New("not a Realize database (bad magic)")}
		}
		if v := decodeUint(meta.Get(keySchema)); v != SchemaVersion {
			return &realize.Error{Op: op, Kind: realize.Unsupported, Path: d.path,
				Err: fmt.Errorf("database schema %d, this realize understands %d", v, SchemaVersion)}
		}
		if !opt.Peer.IsZero() {
			var stored realize.PeerID
			copy(stored[:], meta.Get(keyPeer))
			if stored != opt.Peer {
				return &realize.Error{Op: op, Kind: realize.Corrupt, Path: d.path,
					Err: fmt.Errorf("database belongs to peer %s but the key is %s", stored.Short(), opt.Peer.Short())}
			}
		}
		return nil
	}
	if opt.ReadOnly {
		return d.View(check)
	}
	return d.Update(check)
}

func isEmpty(tx *bolt.Tx) bool {
	c := tx.Cursor()
	k, _ := c.First()
	return k == nil
}

func (d *DB) stamp(tx *bolt.Tx, peer realize.PeerID) error {
	meta, err := tx.CreateBucket(bucketMeta)
	if err != nil {
		return err
	}
	for k, v := range map[string][]byte{
		string(keyMagic):   []byte(Magic),
		string(keySchema):  encodeUint(SchemaVersion),
		string(keyPeer):    peer[:],
		string(keyCreated): encodeUint(uint64(time.Now().UnixNano())),
	} {
		if err := meta.Put([]byte(k), v); err != nil {
			return err
		}
	}
	return nil
}

// check reads every page reachable from the root. It is what turns a
// flipped bit on disk into a refusal at start instead of a panic in the
// middle of work. bbolt's own Tx.Check runs in a goroutine of its own, where
// bbolt's assertions on a damaged page would crash the process; walking the
// buckets here keeps any such panic in this goroutine, where Open recovers.
func (d *DB) check(ctx context.Context) error {
	var n int
	var walk func(b *bolt.Bucket) error
	walk = func(b *bolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			if n++; n%4096 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			if v == nil {
				if nb := b.Bucket(k); nb != nil {
					return walk(nb)
				}
			}
			return nil
		})
	}
	return d.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(_ []byte, b *bolt.Bucket) error { return walk(b) })
	})
}

// Path returns the database file's path.
func (d *DB) Path() string { return d.path }

// Peer returns the peer the database was stamped with.
func (d *DB) Peer() (realize.PeerID, error) {
	var p realize.PeerID
	err := d.View(func(tx *bolt.Tx) error {
		copy(p[:], tx.Bucket(bucketMeta).Get(keyPeer))
		return nil
	})
	return p, err
}

func encodeUint(v uint64) []byte {
	b := make([]byte, 8)
	PutUint(b, v)
	return b
}

func decodeUint(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return Uint(b)
}
