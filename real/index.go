package real

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/fxamacker/cbor/v2"
	"github.com/realizefs/realize"
	"github.com/realizefs/realize/internal/store"
	bolt "go.etcd.io/bbolt"
)

// Layout (see docs/storage.md):
//
//	index/<arena>/f/<path key> -> Record (CBOR array)
//	index/<arena>/counts       -> Counts (CBOR array)
//	blobs/<blob hash>          -> blob record: size, refs, block map
//
// A path key is the path with '/' replaced by 0x00. Because 0x00 sorts
// before every byte a name can hold, the keys of a directory's subtree
// follow the directory's own key immediately, in the same order as a
// depth-first walk of sorted directory listings; the children of a
// directory can be listed by seeking past each child's subtree.
var (
	bucketIndex = []byte("index")
	bucketFiles = []byte("f")
	bucketConfl = []byte("c")
	bucketWhere = []byte("b")
	bucketKept  = []byte("w")
	bucketBlobs = []byte("blobs")
	bucketBlock = []byte("blocks")
	keyCounts   = []byte("counts")
)

// Record is what the index knows about one path.
type Record struct {
	_       struct{} `cbor:",toarray"`
	Meta    realize.Meta
	Stat    Stat                  // what the file looked like when recorded
	Version realize.VersionVector // causal version of the path
	Deleted bool                  // a tombstone: the path was removed (version kept for consensus)
	Origin  realize.PeerID        // who made the change that put the path in this state
	// After a conflict: Own is the shown version's own vector (Version is
	// the merge of the frontier) and Others the rest of the frontier. Both
	// empty otherwise. See package consensus.
	Own    realize.VersionVector
	Others []realize.Alternative
	// Unreal says the path is a file this peer lists but does not hold in
	// its real directory (the bytes are on other peers or in the cache).
	// The scanner leaves such records alone: no file on disk is expected.
	Unreal bool
}

// IsReal tells whether the record is a file held in the real directory.
func (r *Record) IsReal() bool {
	return r != nil && !r.Deleted && !r.Unreal && r.Meta.Kind == realize.KindFile
}

// IsUnreal tells whether the record is a file listed without its bytes.
func (r *Record) IsUnreal() bool {
	return r != nil && !r.Deleted && r.Unreal && r.Meta.Kind == realize.KindFile
}

// Alternative returns the record as a version of its path, under the
// merged version. A missing record is the empty version.
func (r *Record) Alternative() realize.Alternative {
	if r == nil {
		return realize.Alternative{}
	}
	a := realize.Alternative{Origin: r.Origin, Version: r.Version}
	if !r.Deleted {
		a.Meta = r.Meta
	}
	return a
}

// Frontier returns the path's frontier: the shown version under its own
// vector, and the others. A missing record has an empty frontier.
func (r *Record) Frontier() []realize.Alternative {
	if r == nil {
		return nil
	}
	a := r.Alternative()
	if r.Own != nil {
		a.Version = r.Own
	}
	return append([]realize.Alternative{a}, r.Others...)
}

// Counts are per-arena totals kept up to date with every change, so status
// stays instant at a million files.
type Counts struct {
	_        struct{} `cbor:",toarray"`
	Files    int64
	Dirs     int64
	Symlinks int64
	Bytes    int64 // of all files, real or not
	Unreal   int64 // files listed without their bytes here
}

func (c *Counts) add(m realize.Meta, sign int64) {
	switch m.Kind {
	case realize.KindFile:
		c.Files += sign
		c.Bytes += sign * m.Size
	case realize.KindDir:
		c.Dirs += sign
	case realize.KindSymlink:
		c.Symlinks += sign
	}
}

// PathKey encodes p as an index key.
func PathKey(p realize.Path) []byte {
	k := []byte(p)
	for i, c := range k {
		if c == '/' {
			k[i] = 0
		}
	}
	return k
}

// KeyPath decodes an index key.
func KeyPath(k []byte) realize.Path {
	return realize.Path(strings.ReplaceAll(string(k), "\x00", "/"))
}

// Index is one arena's view of the index inside a transaction.
type Index struct {
	tx    *bolt.Tx
	arena realize.ArenaName
	files *bolt.Bucket // nil in a read transaction before the first write
	ab    *bolt.Bucket
	blobs *bolt.Bucket
	// blockIdx maps the blocks of multi-block blobs to where they are:
	// block hash | blob hash -> offset. A one-block blob's block hash is
	// its blob hash, found without it.
	blockIdx *bolt.Bucket
	counts   Counts
	dirty    bool
	// listed are the directories whose names changed in this
	// transaction (see Observer.Listed).
	listed map[realize.Path]bool
	// unused are blobs whose references dropped to zero in this
	// transaction. They are deleted at Flush, not at once: within one
	// transaction a content often leaves one path before it arrives at
	// another (a batch where file a loses content X and file b gains it).
	unused map[realize.Hash]bool
}

// OpenIndex returns the index of arena within tx, creating its buckets in a
// writable transaction.
func OpenIndex(tx *bolt.Tx, arena realize.ArenaName) (*Index, error) {
	ix := &Index{tx: tx, arena: arena}
	if tx.Writable() {
		root, err := tx.CreateBucketIfNotExists(bucketIndex)
		if err != nil {
			return nil, err
		}
		if ix.ab, err = root.CreateBucketIfNotExists([]byte(arena)); err != nil {
			return nil, err
		}
		if ix.files, err = ix.ab.CreateBucketIfNotExists(bucketFiles); err != nil {
			return nil, err
		}
		// A scan records paths in key order (depth first, sorted), so
		// the index grows at its end like a log; later changes mostly
		// rewrite records in place.
		ix.files.FillPercent = store.AppendFill
		for _, name := range [][]byte{bucketConfl, bucketWhere, bucketDrops, bucketKept, bucketWins, bucketGone} {
			if _, err = ix.ab.CreateBucketIfNotExists(name); err != nil {
				return nil, err
			}
		}
		if ix.blobs, err = tx.CreateBucketIfNotExists(bucketBlobs); err != nil {
			return nil, err
		}
		if ix.blockIdx, err = tx.CreateBucketIfNotExists(bucketBlock); err != nil {
			return nil, err
		}
	} else if root := tx.Bucket(bucketIndex); root != nil {
		if ix.ab = root.Bucket([]byte(arena)); ix.ab != nil {
			ix.files = ix.ab.Bucket(bucketFiles)
		}
		ix.blobs = tx.Bucket(bucketBlobs)
		ix.blockIdx = tx.Bucket(bucketBlock)
	}
	if ix.ab != nil {
		if raw := ix.ab.Get(keyCounts); raw != nil {
			if err := cbor.Unmarshal(raw, &ix.counts); err != nil {
				return nil, ix.corrupt("", err)
			}
		}
	}
	return ix, nil
}

// Counts returns the arena's totals.
func (ix *Index) Counts() Counts { return ix.counts }

// Get returns the record for p, or nil. Tombstones are returned too.
func (ix *Index) Get(p realize.Path) (*Record, error) {
	if ix.files == nil {
		return nil, nil
	}
	raw := ix.files.Get(PathKey(p))
	if raw == nil {
		return nil, nil
	}
	return ix.decode(p, raw)
}

func (ix *Index) decode(p realize.Path, raw []byte) (*Record, error) {
	var r Record
	if err := cbor.Unmarshal(raw, &r); err != nil {
		return nil, ix.corrupt(p, err)
	}
	return &r, nil
}

func (ix *Index) corrupt(p realize.Path, err error) error {
	return &realize.Error{Op: "read index", Kind: realize.Corrupt, Arena: ix.arena, Path: string(p), Err: err}
}

// Child is one entry of a directory listing from the index.
type Child struct {
	Name string
	Rec  *Record
}

// Children lists the direct children of dir (tombstones included), sorted
// by name bytes — the order os.ReadDir returns on every OS we support.
func (ix *Index) Children(dir realize.Path) ([]Child, error) {
	if ix.files == nil {
		return nil, nil
	}
	var prefix []byte
	if !dir.IsRoot() {
		prefix = append(PathKey(dir), 0)
	}
	var out []Child
	c := ix.files.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); {
		rest := k[len(prefix):]
		if i := bytes.IndexByte(rest, 0); i >= 0 {
			// A descendant whose own directory entry is missing: skip it.
			k, v = c.Seek(append(append([]byte{}, k[:len(prefix)+i]...), 1))
			continue
		}
		r, err := ix.decode(KeyPath(k), v)
		if err != nil {
			return nil, err
		}
		out = append(out, Child{Name: string(rest), Rec: r})
		// Skip this child's subtree: its keys are k+0x00+...; k+0x01
		// follows them. A file has none: the next key is its next
		// sibling, and stepping there is much cheaper than a seek.
		child := k
		if k, v = c.Next(); k != nil && len(k) > len(child) && k[len(child)] == 0 && bytes.HasPrefix(k, child) {
			k, v = c.Seek(append(append([]byte{}, child...), 1))
		}
	}
	return out, nil
}

// Walk calls fn for every record under dir (dir itself included when it
// has a record), in depth-first order.
func (ix *Index) Walk(dir realize.Path, fn func(p realize.Path, r *Record) error) error {
	if ix.files == nil {
		return nil
	}
	key := PathKey(dir)
	c := ix.files.Cursor()
	for k, v := c.Seek(key); k != nil; k, v = c.Next() {
		if !dir.IsRoot() && !(bytes.Equal(k, key) || bytes.HasPrefix(k, key) && k[len(key)] == 0) {
			break
		}
		p := KeyPath(k)
		r, err := ix.decode(p, v)
		if err != nil {
			return err
		}
		if err := fn(p, r); err != nil {
			return err
		}
	}
	return nil
}

// Put stores r at p, keeping counts and blob references in step.
func (ix *Index) Put(p realize.Path, r *Record) error {
	if ix.files == nil {
		return errors.New("index: write in a read-only transaction")
	}
	old, err := ix.Get(p)
	if err != nil {
		return err
	}
	// Release the old blob's path entry before adding the new one (they may
	// be the same key), but reference the new blob before releasing the old
	// one: they are often the same (a chmod), and releasing first would
	// drop its record.
	// Only real files hold blob references and where-entries: they are
	// the bytes this peer can read and serve without asking anyone.
	key := PathKey(p)
	if old.IsReal() {
		if err := ix.ab.Bucket(bucketWhere).Delete(whereKey(old.Meta.Blob, key)); err != nil {
			return err
		}
	}
	if !r.Deleted {
		ix.counts.add(r.Meta, +1)
		if r.IsUnreal() {
			ix.counts.Unreal++
		}
	}
	if r.IsReal() {
		if err := ix.ref(r.Meta); err != nil {
			return err
		}
		if err := ix.ab.Bucket(bucketWhere).Put(whereKey(r.Meta.Blob, key), nil); err != nil {
			return err
		}
	}
	if old != nil && !old.Deleted {
		ix.counts.add(old.Meta, -1)
		if old.IsUnreal() {
			ix.counts.Unreal--
		}
	}
	if old.IsReal() {
		if err := ix.unref(old.Meta); err != nil {
			return err
		}
	}
	raw, err := cbor.Marshal(r)
	if err != nil {
		return err
	}
	ix.dirty = true
	ix.noteListed(p, old, r)
	return ix.files.Put(key, raw)
}

func whereKey(blob realize.Hash, pathKey []byte) []byte {
	return append(append(make([]byte, 0, len(blob)+len(pathKey)), blob[:]...), pathKey...)
}

// PathsOf lists the paths of this arena whose recorded content is blob:
// where this peer can read those bytes without asking anyone.
func (ix *Index) PathsOf(blob realize.Hash) []realize.Path {
	if ix.ab == nil || ix.ab.Bucket(bucketWhere) == nil {
		return nil
	}
	var out []realize.Path
	c := ix.ab.Bucket(bucketWhere).Cursor()
	for k, _ := c.Seek(blob[:]); k != nil && bytes.HasPrefix(k, blob[:]); k, _ = c.Next() {
		out = append(out, KeyPath(k[len(blob):]))
	}
	return out
}

// Flush writes the counts and drops blob records nothing references any
// more; call it once before the transaction commits.
func (ix *Index) Flush() error {
	for h := range ix.unused {
		if raw := ix.blobs.Get(h[:]); raw != nil && binary.BigEndian.Uint64(raw[8:]) == 0 {
			if err := ix.unindexBlocks(h); err != nil {
				return err
			}
			if err := ix.blobs.Delete(h[:]); err != nil {
				return err
			}
		}
	}
	clear(ix.unused)
	if !ix.dirty {
		return nil
	}
	raw, err := cbor.Marshal(&ix.counts)
	if err != nil {
		return err
	}
	ix.dirty = false
	return ix.ab.Put(keyCounts, raw)
}

// Blob records: size (8 bytes), reference count (8 bytes), then the block
// map as (hash 32 bytes, size 4 bytes) per block. A fixed binary layout
// keeps a 1 GiB file's map at 147 KB and makes it cheap to read a range.
const blobHeader = 16
const blockEntry = 32 + 4

func (ix *Index) ref(m realize.Meta) error {
	if m.Kind != realize.KindFile {
		return nil
	}
	raw := ix.blobs.Get(m.Blob[:])
	if raw == nil {
		return &realize.Error{Op: "index file", Kind: realize.Corrupt, Arena: ix.arena,
			Err: fmt.Errorf("blob %s has no block map", m.Blob.Short())}
	}
	b := append([]byte{}, raw...)
	binary.BigEndian.PutUint64(b[8:], binary.BigEndian.Uint64(b[8:])+1)
	return ix.blobs.Put(m.Blob[:], b)
}

func (ix *Index) unref(m realize.Meta) error {
	if m.Kind != realize.KindFile {
		return nil
	}
	raw := ix.blobs.Get(m.Blob[:])
	if raw == nil {
		return nil
	}
	refs := binary.BigEndian.Uint64(raw[8:])
	if refs <= 1 {
		refs = 1
		if ix.unused == nil {
			ix.unused = map[realize.Hash]bool{}
		}
		ix.unused[m.Blob] = true
	}
	b := append([]byte{}, raw...)
	binary.BigEndian.PutUint64(b[8:], refs-1)
	return ix.blobs.Put(m.Blob[:], b)
}

// PutBlob records a blob's block map (refs start at 0; Put adds them, and
// Flush drops it if none did). It is a no-op when the blob is already known:
// the map is a function of the bytes.
func (ix *Index) PutBlob(h realize.Hash, size int64, blocks realize.BlockMap) error {
	if ix.blobs.Get(h[:]) != nil {
		return nil
	}
	if ix.unused == nil {
		ix.unused = map[realize.Hash]bool{}
	}
	ix.unused[h] = true // until a record references it
	b := make([]byte, blobHeader+blockEntry*len(blocks))
	binary.BigEndian.PutUint64(b, uint64(size))
	var off uint64
	for i, bl := range blocks {
		o := blobHeader + i*blockEntry
		copy(b[o:], bl.Hash[:])
		binary.BigEndian.PutUint32(b[o+32:], bl.Size)
		if len(blocks) > 1 {
			if err := ix.blockIdx.Put(blockKey(bl.Hash, h), binary.BigEndian.AppendUint64(nil, off)); err != nil {
				return err
			}
		}
		off += uint64(bl.Size)
	}
	return ix.blobs.Put(h[:], b)
}

func blockKey(block, blob realize.Hash) []byte {
	return append(append(make([]byte, 0, 64), block[:]...), blob[:]...)
}

// unindexBlocks removes a blob's blocks from the block index.
func (ix *Index) unindexBlocks(h realize.Hash) error {
	_, _, blocks, err := ix.Blob(h)
	if err != nil || len(blocks) < 2 {
		return err
	}
	for _, bl := range blocks {
		if err := ix.blockIdx.Delete(blockKey(bl.Hash, h)); err != nil {
			return err
		}
	}
	return nil
}

// BlockLocation is where a block's bytes are inside a blob.
type BlockLocation struct {
	Blob   realize.Hash
	Offset int64
}

// WhereIsBlock lists the blobs (of any arena of this peer) known to hold a
// block, and where in them.
func (ix *Index) WhereIsBlock(block realize.Hash) []BlockLocation {
	var out []BlockLocation
	if ix.blobs != nil && ix.blobs.Get(block[:]) != nil {
		out = append(out, BlockLocation{Blob: block}) // a one-block blob
	}
	if ix.blockIdx == nil {
		return out
	}
	c := ix.blockIdx.Cursor()
	for k, v := c.Seek(block[:]); k != nil && bytes.HasPrefix(k, block[:]); k, v = c.Next() {
		var l BlockLocation
		copy(l.Blob[:], k[32:])
		l.Offset = int64(binary.BigEndian.Uint64(v))
		out = append(out, l)
	}
	return out
}

// ForEachBlob calls fn with every blob record's hash and reference count.
func (ix *Index) ForEachBlob(fn func(h realize.Hash, refs uint64) error) error {
	if ix.blobs == nil {
		return nil
	}
	return ix.blobs.ForEach(func(k, v []byte) error {
		var h realize.Hash
		if len(k) != len(h) || len(v) < blobHeader {
			return &realize.Error{Op: "read blob", Kind: realize.Corrupt, Err: fmt.Errorf("blob record %x", k)}
		}
		copy(h[:], k)
		return fn(h, binary.BigEndian.Uint64(v[8:]))
	})
}

// Blob returns a blob's size, reference count and block map.
func (ix *Index) Blob(h realize.Hash) (size int64, refs uint64, blocks realize.BlockMap, err error) {
	if ix.blobs == nil {
		return 0, 0, nil, nil
	}
	raw := ix.blobs.Get(h[:])
	if raw == nil {
		return 0, 0, nil, nil
	}
	if len(raw) < blobHeader || (len(raw)-blobHeader)%blockEntry != 0 {
		return 0, 0, nil, &realize.Error{Op: "read blob", Kind: realize.Corrupt, Err: fmt.Errorf("blob %s record of %d bytes", h.Short(), len(raw))}
	}
	size, refs = int64(binary.BigEndian.Uint64(raw)), binary.BigEndian.Uint64(raw[8:])
	blocks = make(realize.BlockMap, (len(raw)-blobHeader)/blockEntry)
	for i := range blocks {
		o := blobHeader + i*blockEntry
		copy(blocks[i].Hash[:], raw[o:])
		blocks[i].Size = binary.BigEndian.Uint32(raw[o+32:])
	}
	return size, refs, blocks, nil
}
