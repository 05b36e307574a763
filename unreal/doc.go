// Package unreal holds what a peer keeps of files it does not store as
// real files. Today that is the block cache (Cache); the household-wide
// listing of each arena arrives with the NFS step.
//
// # The cache
//
// A blob's bytes are fetched block by block, only the blocks covering what
// is read (plus a few ahead on sequential reads), from the peers a
// BlockSource names, and each block is checked against its BLAKE3 hash
// before a byte of it is used (SPEC §5 invariant 3). Cached blocks are
// checked again each time they are read back from disk: a damaged block is
// dropped and refetched, never served.
//
// Storage is one sparse file per blob under the cache directory, named by
// the blob's hex hash, each block written at its offset; reads are served
// from that file straight into the reader's buffer. Which blocks are
// present is recorded in the bbolt bucket "cache" (size, block map,
// present bitset, last access per blob), flushed about once a second
// after fsyncing the files written to: the record may lag behind the
// files after a crash (a missing block is refetched) but never claims a
// block that was not written. See docs/storage.md.
//
// The quota is Max (bytes or a share of the disk) and Leave (free space
// always left on the disk). Eviction is LRU by block, across blobs, and
// frees disk space by punching holes (Linux). Never evicted: blobs held
// (Hold: open files) and blobs fewer than Copies other peers hold
// (invariant 4). When nothing can be evicted, fetched blocks are served
// without being stored.
//
// Fetching is shared: concurrent readers of a missing block wait for one
// fetch. A peer that sent a block failing its hash is not asked for that
// block again, one that sent a hostile block map not for the blob. A read
// waits at most CacheOptions.Wait for a block and then fails with Kind
// Unavailable: it never hangs on peers that do not answer (SPEC §4.5).
//
// Locking: Cache.mu guards all in-memory state and is never held during
// file or network I/O. Each blob has an io lock, taken shared to read or
// write blocks and exclusively to punch, rename or remove its file; it is
// always taken before Cache.mu.
package unreal
