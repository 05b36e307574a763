package unreal

import (
	"container/list"
	"context"
	"errors"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/internal/config"
	"github.com/realizefs/realize/internal/store"
)

// CacheOptions configure a Cache.
type CacheOptions struct {
	DB  *store.DB
	Dir string // <data>/cache: one sparse file per blob, named by its hex hash (0700)

	Source BlockSource

	// Max bounds the cache (bytes, or a share of the disk holding Dir);
	// zero means no bound but Leave. Leave is always kept free on that
	// disk, whatever Max says.
	Max, Leave config.Size

	// OthersHold tells how many peers other than this one are known to
	// hold a complete copy of blob. It is called with the cache's lock
	// held: it must be quick and must not call back into the Cache. Nil
	// counts as zero, so that nothing whose copies are unknown is evicted.
	OthersHold func(blob realize.Hash) int
	// Copies: blobs with OthersHold < Copies are never evicted (default 1,
	// "never drop the last household copy").
	Copies int

	// Wait is how long a read waits for a block before failing with Kind
	// Unavailable (default 10s).
	Wait time.Duration
	// ReadAhead is how many blocks are fetched ahead of sequential reads
	// (default 8; negative turns read-ahead off).
	ReadAhead int

	Clock  realize.Clock
	Logger *slog.Logger
}

// CacheStats count what the cache did since it was opened.
type CacheStats struct {
	Fetched     int64 // bytes received from peers and verified
	Hits        int64 // blocks served from the cache (memory or disk)
	Misses      int64 // blocks that had to be fetched
	Evicted     int64 // bytes evicted
	Rejected    int64 // blocks that failed verification (from a peer or from disk)
	PassThrough int64 // fetched blocks served without being stored (no room)
}

type counters struct {
	fetched, hits, misses, evicted, rejected, passThrough atomic.Int64
}

const (
	defaultWait      = 10 * time.Second
	defaultReadAhead = 8
	runBlocks        = 16      // blocks asked of a peer per request
	aheadRuns        = 2       // read-ahead runs in flight at once
	memCacheBytes    = 8 << 20 // verified block bytes kept in memory
	flushEvery       = time.Second
	// accessSaveEvery: a read alone rewrites a blob's record (for the LRU
	// order after a restart) at most this often.
	accessSaveEvery = time.Minute
	// idleForget: a blob with no block stored is forgotten (its block map
	// dropped from memory) after this long without a read.
	idleForget = time.Minute
)

// Cache holds verified blocks of unreal files, under a quota. See the
// package documentation for the design.
type Cache struct {
	db     *store.DB
	dir    string
	src    BlockSource
	max    config.Size
	leave  config.Size
	others func(realize.Hash) int
	copies int
	wait   time.Duration
	ahead  int
	clock  realize.Clock
	log    *slog.Logger
	statfs func(dir string) (total, free int64, err error)

	ctx    context.Context // canceled by Close: stops fetches in the background
	cancel context.CancelFunc
	wg     sync.WaitGroup
	aheadQ chan struct{} // read-ahead runs in flight
	mem    *memCache
	st     counters
	disk   atomic.Pointer[diskSize]

	mu       sync.Mutex
	closed   bool
	blobs    map[realize.Hash]*blobState
	lru      *list.List // present blocks (*lruEntry), most recently used first
	used     int64      // bytes of present blocks
	reserved int64      // bytes being written
	holds    map[realize.Hash]int
	flights  map[flightKey]*flight
	maps     map[realize.Hash]*mapFlight
	badMap   map[realize.Hash]map[realize.PeerID]bool // peers that sent a hostile map, per blob
	badBlock map[realize.Hash]map[realize.PeerID]bool // peers that sent bad bytes, per block hash
	dirty    map[realize.Hash]*blobState
	deleted  map[realize.Hash]bool // records to delete at the next flush
	starved  time.Time             // when an eviction pass last found nothing to evict
}

type diskSize struct{ total, free int64 }

// OpenCache opens the cache: loads the records of bucket "cache", checks
// them against the files in Dir (a record is trusted only as far as its
// file reaches; files without a record are removed), and trims to the
// quota.
func OpenCache(ctx context.Context, opt CacheOptions) (*Cache, error) {
	if opt.DB == nil || opt.Dir == "" || opt.Source == nil {
		return nil, &realize.Error{Op: "open cache", Kind: realize.Invalid, Err: errors.New("DB, Dir and Source are required")}
	}
	c := newCache(opt)
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return nil, &realize.Error{Op: "open cache", Kind: realize.IO, Path: c.dir, Err: err}
	}
	if _, err := c.refreshDisk(); err != nil && (opt.Max.IsPercent() || opt.Leave.IsPercent()) {
		return nil, &realize.Error{Op: "open cache", Kind: realize.IO, Path: c.dir, Err: err}
	}
	if err := c.load(ctx); err != nil {
		return nil, err
	}
	c.trim()
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.wg.Add(1)
	go c.flushLoop()
	return c, nil
}

func newCache(opt CacheOptions) *Cache {
	c := &Cache{
		db: opt.DB, dir: opt.Dir, src: opt.Source, max: opt.Max, leave: opt.Leave,
		others: opt.OthersHold, copies: opt.Copies, wait: opt.Wait, ahead: opt.ReadAhead,
		clock: opt.Clock, log: opt.Logger, statfs: statDisk,
		aheadQ: make(chan struct{}, aheadRuns), mem: newMemCache(memCacheBytes),
		blobs: map[realize.Hash]*blobState{}, lru: list.New(), holds: map[realize.Hash]int{},
		flights: map[flightKey]*flight{}, maps: map[realize.Hash]*mapFlight{},
		badMap: map[realize.Hash]map[realize.PeerID]bool{}, badBlock: map[realize.Hash]map[realize.PeerID]bool{},
		dirty: map[realize.Hash]*blobState{}, deleted: map[realize.Hash]bool{},
	}
	if c.copies <= 0 {
		c.copies = 1
	}
	if c.wait <= 0 {
		c.wait = defaultWait
	}
	if c.ahead == 0 {
		c.ahead = defaultReadAhead
	}
	if c.clock == nil {
		c.clock = realize.SystemClock{}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c
}

// Close stops background fetches, waits for them, and records what is
// present. Reads after Close fail.
func (c *Cache) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	return c.flush()
}

// Stats returns the counters.
func (c *Cache) Stats() CacheStats {
	return CacheStats{
		Fetched: c.st.fetched.Load(), Hits: c.st.hits.Load(), Misses: c.st.misses.Load(),
		Evicted: c.st.evicted.Load(), Rejected: c.st.rejected.Load(), PassThrough: c.st.passThrough.Load(),
	}
}

// Usage returns the bytes of blocks present (and being written) and the
// current limit (for statfs and status).
func (c *Cache) Usage() (used, limit int64) {
	d := c.diskNow()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.used + c.reserved, c.limitLocked(d)
}

// Present returns the bytes of blob present in the cache (each block was
// verified when it was stored).
func (c *Cache) Present(blob realize.Hash) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if b := c.blobs[blob]; b != nil {
		return b.presentBytes, nil
	}
	return 0, nil
}

// Hold protects blob from eviction until release is called (a file open
// for reading or being written). Holds nest; release is idempotent.
func (c *Cache) Hold(blob realize.Hash) (release func()) {
	c.mu.Lock()
	c.holds[blob]++
	c.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			if c.holds[blob]--; c.holds[blob] <= 0 {
				delete(c.holds, blob)
				c.starved = time.Time{} // something may be evictable again
			}
			c.mu.Unlock()
		})
	}
}

// Drop removes blob from the cache: its file and its record.
func (c *Cache) Drop(blob realize.Hash) error {
	c.mu.Lock()
	b := c.blobs[blob]
	c.mu.Unlock()
	if b == nil {
		return nil
	}
	b.io.Lock()
	defer b.io.Unlock()
	c.mu.Lock()
	gone := b.gone
	if !gone {
		c.forgetLocked(b)
	}
	c.mu.Unlock()
	if gone {
		return nil
	}
	if err := os.Remove(c.path(blob)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return &realize.Error{Op: "drop cached blob", Kind: realize.IO, Path: c.path(blob), Err: err}
	}
	return c.deleteRecord(blob)
}

// errClosed is returned by reads after Close.
var errClosed = errors.New("cache is closed")
