package control

import (
	"time"

	"github.com/realizefs/realize"
)

// PathRequest names paths the way a person types them: "arena:path", a
// path inside an arena's real directory, or a path inside a mount made by
// `realize mount` (<mount>/<arena>/<path>). The daemon resolves them: it
// alone knows the arenas' directories and its mounts.
type PathRequest struct {
	Paths []string `json:"paths"`
}

// PinEvent is one line of a pin's progress. The last one has Done set;
// Failed lists the files that could not be made real (the others are).
type PinEvent struct {
	Arena     realize.ArenaName `json:"arena"`
	Path      realize.Path      `json:"path"` // the path pinned
	Files     int               `json:"files"`
	FilesDone int               `json:"files_done"`
	Bytes     int64             `json:"bytes"`
	BytesDone int64             `json:"bytes_done"`
	Current   realize.Path      `json:"current,omitempty"` // the file being fetched
	Done      bool              `json:"done,omitempty"`
	Failed    []PathFailure     `json:"failed,omitempty"`
}

// PathFailure is a path an operation could not do, and why.
type PathFailure struct {
	Arena  realize.ArenaName `json:"arena"`
	Path   realize.Path      `json:"path"`
	Reason string            `json:"reason"`
}

// UnpinReport is the outcome of `realize unpin`.
type UnpinReport struct {
	Unpinned []PathRef     `json:"unpinned"` // the paths marked
	Files    int           `json:"files"`    // real files made unreal (moved to the cache)
	Bytes    int64         `json:"bytes"`
	Kept     []PathFailure `json:"kept,omitempty"` // real files left real, and why (the last copy, ...)
}

// PathRef is one resolved path.
type PathRef struct {
	Arena realize.ArenaName `json:"arena"`
	Path  realize.Path      `json:"path"`
}

// PathStatus is `realize status PATH`.
type PathStatus struct {
	Arena realize.ArenaName `json:"arena"`
	Path  realize.Path      `json:"path"`
	Kind  string            `json:"kind"` // file, dir, symlink, none
	// Mark is "pinned" or "unpinned"; MarkFrom the path it is inherited
	// from (empty: the arena's default).
	Mark     string        `json:"mark"`
	MarkFrom *realize.Path `json:"mark_from,omitempty"`
	// State of a file: "real", "cached" (some bytes in the cache) or
	// "remote" (none here). CachedBytes counts verified cached bytes.
	State       string        `json:"state,omitempty"`
	CachedBytes int64         `json:"cached_bytes,omitempty"`
	Size        int64         `json:"size,omitempty"`
	Hash        *realize.Hash `json:"hash,omitempty"`
	MTime       time.Time     `json:"mtime,omitzero"`
	// Holders are the peers known to hold the file's bytes in a real file
	// (this peer included when it does).
	Holders []PeerRef `json:"holders,omitempty"`
	// For a directory: files below it, real and unreal.
	RealFiles   int64 `json:"real_files,omitempty"`
	UnrealFiles int64 `json:"unreal_files,omitempty"`
}

// PeerRef names a peer.
type PeerRef struct {
	Peer realize.PeerID `json:"peer"`
	Name string         `json:"name,omitempty"`
}

// CacheStatus is the cache's use, in StatusReport.
type CacheStatus struct {
	Dir            string `json:"dir"`
	UsedBytes      int64  `json:"used_bytes"`
	LimitBytes     int64  `json:"limit_bytes"`
	FetchedBytes   int64  `json:"fetched_bytes"` // from peers since start, for reads through the mount
	Hits           int64  `json:"hits"`
	Misses         int64  `json:"misses"`
	EvictedBytes   int64  `json:"evicted_bytes"`
	RejectedBlocks int64  `json:"rejected_blocks"`
}
