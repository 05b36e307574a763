// Package unreal will hold what a peer knows of files it does not keep as
// real files: the household-wide listing of each arena (what exists, where,
// which peers hold it), stored locally so the mount lists every file with
// all peers offline; and the cache of partially present blobs (which ranges
// are present, verified block by block), evicted LRU under a quota while
// never dropping pinned data, open files, conflict versions or the last
// household copy.
//
// Nothing is implemented yet: this arrives with the unreal/NFS step. The
// package exists now so the layering in docs/architecture.md is enforced
// from the start.
package unreal
