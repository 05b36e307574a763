// Package control is the local control channel between the CLI and a running
// daemon: JSON over HTTP on a Unix socket that only the owner can reach
// (socket 0600 in a 0700 directory). This file is the contract: the request
// and report types, and the Backend the daemon implements. The same Backend
// can be built directly on a read-only database, so read-only commands
// (`realize log`) also work while the daemon is down.
package control

import (
	"context"
	"time"

	"github.com/realizefs/realize"
)

// APIVersion is sent by the client and checked by the server so a CLI and a
// daemon of different versions fail with a clear message, not a decode error.
// 2: conflicts lists each contested path's current version too; resolve.
const APIVersion = 2

// Backend is what the daemon offers to the CLI.
type Backend interface {
	// Status reports on the daemon, its arenas and its work.
	Status(ctx context.Context) (*StatusReport, error)
	// Log calls emit for each history entry matching q, oldest first.
	Log(ctx context.Context, q LogQuery, emit func(*LogRecord) error) error
	// Verify checks the hash chains and signed heads of the logs matching q.
	Verify(ctx context.Context, q LogQuery) (*VerifyReport, error)
	// Conflicts lists the contested paths of one arena or (empty name)
	// all: for each, the version it shows and the versions kept aside.
	Conflicts(ctx context.Context, arena realize.ArenaName) ([]ConflictRecord, error)
	// Resolve records a resolution of the conflict at one path.
	Resolve(ctx context.Context, req ResolveRequest) (*ResolveReport, error)
	// Pin marks paths to be kept real and makes every file below them
	// real, calling progress as it goes (the last event has Done set).
	Pin(ctx context.Context, req PathRequest, progress func(*PinEvent) error) error
	// Unpin marks paths as not pinned and moves their real files into the
	// cache, except those no other peer holds.
	Unpin(ctx context.Context, req PathRequest) (*UnpinReport, error)
	// PathStatus reports on one path.
	PathStatus(ctx context.Context, path string) (*PathStatus, error)
	// Approve records deletions held by the delete guard.
	Approve(ctx context.Context, req ApproveRequest) (*ApproveReport, error)
}

// ConflictRecord is one version of a contested path: the one the path
// shows (Current), or one that lost a conflict and is kept until someone
// resolves it. With --json the list is printed as is, each path's current
// version first.
type ConflictRecord struct {
	Arena      realize.ArenaName `json:"arena"`
	Path       realize.Path      `json:"path"`
	Version    string            `json:"version"` // what names it for `realize resolve --keep`
	Current    bool              `json:"current"` // the version at the path
	Origin     realize.PeerID    `json:"origin"`  // who made this version
	OriginName string            `json:"origin_name,omitempty"`
	Kind       string            `json:"kind"`
	Hash       *realize.Hash     `json:"hash,omitempty"`
	Size       *int64            `json:"size,omitempty"`
	MTime      time.Time         `json:"mtime,omitzero"`
	Target     string            `json:"target,omitempty"`
	Local      bool              `json:"local"` // its bytes are kept on this peer
}

// ResolveRequest asks for a resolution of the conflict at Path
// (ARENA:PATH): keep what the path shows, or the version Keep names, or
// keep every version aside as a copy beside the path (Copies).
type ResolveRequest struct {
	Path   string `json:"path"`
	Keep   string `json:"keep,omitempty"`
	Copies bool   `json:"copies,omitempty"`
}

// ResolveReport says what a resolution did.
type ResolveReport struct {
	Arena   realize.ArenaName `json:"arena"`
	Path    realize.Path      `json:"path"`
	Kept    ConflictRecord    `json:"kept"`    // what the path holds now
	Dropped []ConflictRecord  `json:"dropped"` // the versions no longer kept aside
	Copies  []realize.Path    `json:"copies,omitempty"`
}

// LogQuery selects history entries. Zero values select everything.
type LogQuery struct {
	Arena realize.ArenaName `json:"arena,omitempty"`
	Peer  string            `json:"peer,omitempty"` // peer name, hex id or id prefix; empty = all logs
	Since time.Time         `json:"since,omitzero"`
	Limit int               `json:"limit,omitempty"` // newest Limit entries; 0 = all
}

// LogRecord is one history entry as the CLI shows it. With --json it is
// printed as is, one object per line: scripts rely on these field names.
type LogRecord struct {
	Seq       uint64            `json:"seq"`
	Time      time.Time         `json:"time"`
	Peer      realize.PeerID    `json:"peer"` // whose log
	PeerName  string            `json:"peer_name,omitempty"`
	Origin    realize.PeerID    `json:"origin"` // who made the change
	Arena     realize.ArenaName `json:"arena"`
	Op        string            `json:"op"`
	Path      realize.Path      `json:"path"`
	From      realize.Path      `json:"from,omitempty"` // rename source
	Kind      string            `json:"kind"`
	Hash      *realize.Hash     `json:"hash,omitempty"` // files: BLAKE3 of content
	Size      *int64            `json:"size,omitempty"` // files: bytes
	MTime     time.Time         `json:"mtime,omitzero"`
	Exec      bool              `json:"exec,omitempty"`
	Target    string            `json:"target,omitempty"`  // symlinks
	Version   map[string]uint64 `json:"version,omitempty"` // peer hex -> counter
	EntryHash realize.Hash      `json:"entry_hash"`
}

// VerifyReport is the result of checking one or more logs.
type VerifyReport struct {
	Logs []LogVerification `json:"logs"`
	OK   bool              `json:"ok"`
}

// LogVerification is the result for one (arena, peer) log.
type LogVerification struct {
	Arena   realize.ArenaName `json:"arena"`
	Peer    realize.PeerID    `json:"peer"`
	Entries int               `json:"entries"`
	First   uint64            `json:"first_seq"`
	Head    uint64            `json:"head_seq"`
	OK      bool              `json:"ok"`
	Problem string            `json:"problem,omitempty"`
}

// StatusReport is `realize status` without a path.
type StatusReport struct {
	Daemon DaemonStatus  `json:"daemon"`
	Arenas []ArenaStatus `json:"arenas"`
	Peers  []PeerStatus  `json:"peers"`
	Cache  *CacheStatus  `json:"cache,omitempty"`
	NFS    string        `json:"nfs,omitempty"` // the NFS server's address, when serving
	// NFSError says why the NFS server is not serving, when it should.
	NFSError string `json:"nfs_error,omitempty"`
	// Transfers is the work running now (see TransferStatus); empty, not
	// absent, when there is none.
	Transfers []TransferStatus `json:"transfers"`
	// Metrics is the Prometheus endpoint's address, when serving;
	// MetricsError says why it is not, when it should.
	Metrics      string `json:"metrics,omitempty"`
	MetricsError string `json:"metrics_error,omitempty"`
}

// PeerStatus describes one configured peer as this daemon sees it.
type PeerStatus struct {
	Name       string         `json:"name"`
	Peer       realize.PeerID `json:"peer"`
	Address    string         `json:"address,omitempty"` // configured; empty: deaf (it dials us)
	Connected  bool           `json:"connected"`
	RemoteAddr string         `json:"remote_addr,omitempty"`
	Since      time.Time      `json:"since,omitzero"`     // connected since
	LastSeen   time.Time      `json:"last_seen,omitzero"` // last time connected
	LastError  string         `json:"last_error,omitempty"`
	// Lag is how many history entries the peer announced that this peer
	// has not stored yet (0 when in sync or not connected).
	Lag uint64 `json:"lag"`
	// Behind is how many entries of this peer's own logs the peer has not
	// acknowledged storing yet.
	Behind uint64 `json:"behind"`
	// Heard is the last time the peer was heard from (acknowledged
	// history, or was connected), kept across restarts.
	Heard time.Time `json:"heard,omitzero"`
	// Inactive: silent longer than history.inactive_after, the peer no
	// longer holds back history trimming; back, it catches up by snapshot.
	Inactive bool `json:"inactive"`
}

// DaemonStatus describes the running process.
type DaemonStatus struct {
	Running bool           `json:"running"`
	PID     int            `json:"pid,omitempty"`
	Peer    realize.PeerID `json:"peer"`
	Name    string         `json:"name,omitempty"`
	Version string         `json:"version,omitempty"`
	Started time.Time      `json:"started,omitzero"`
	DataDir string         `json:"data_dir"`
}

// ArenaStatus describes one arena on this peer.
type ArenaStatus struct {
	Name         realize.ArenaName `json:"name"`
	Dir          string            `json:"dir"`
	Files        int64             `json:"files"`
	Dirs         int64             `json:"dirs"`
	Symlinks     int64             `json:"symlinks"`
	Bytes        int64             `json:"bytes"`
	UnrealFiles  int64             `json:"unreal_files"`  // files listed here without their bytes
	Pinned       bool              `json:"pinned"`        // the arena's default mark
	PendingHash  int64             `json:"pending_hash"`  // files waiting to be hashed
	PendingBytes int64             `json:"pending_bytes"` // their bytes
	Scanning     bool              `json:"scanning"`
	LastScan     time.Time         `json:"last_scan,omitzero"`
	HistorySeq   uint64            `json:"history_seq"`       // head of this peer's log
	Watching     bool              `json:"watching"`          // fsnotify active (else rescans only)
	Skipped      []SkippedPath     `json:"skipped,omitempty"` // paths that could not be indexed
	Error        string            `json:"error,omitempty"`   // why the arena is not being indexed
	// Held are deletions waiting for `realize approve`; absent when none.
	Held *HeldDeletions `json:"held,omitempty"`
	// SettlingDeletes are deletions found a moment ago, waiting for more
	// before the delete guard judges them together.
	SettlingDeletes int64 `json:"settling_deletes"`
	// Bytes fetched from peers since the daemon started, and bytes found
	// already present (resumed transfers, local copies of blocks).
	ReceivedBytes  int64 `json:"received_bytes"`
	ReusedBytes    int64 `json:"reused_bytes"`
	RejectedBlocks int64 `json:"rejected_blocks"` // blocks a peer sent that failed verification
}

// SkippedPath is a path the indexer could not record, and why.
type SkippedPath struct {
	Path   string `json:"path"` // OS-relative, may not be valid UTF-8 (then shown quoted)
	Reason string `json:"reason"`
}
