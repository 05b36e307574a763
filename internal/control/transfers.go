package control

import (
	"time"

	"github.com/realizefs/realize"
)

// Kinds of TransferStatus.
const (
	// TransferSync is a file fetched by replication: a change made on
	// another peer to a file that is real here (pinned, or real already).
	TransferSync = "sync"
	// TransferPin is a `realize pin` making the files below a path real.
	TransferPin = "pin"
	// TransferRead is bytes of an unreal file fetched into the cache for
	// reads (through the mount, or a write that realizes the file). It is
	// listed while bytes arrive and for a few seconds after.
	TransferRead = "read"
)

// TransferStatus is one piece of work moving bytes, in
// StatusReport.Transfers. With --json it is printed as is: scripts rely on
// these field names.
type TransferStatus struct {
	Kind  string            `json:"kind"` // TransferSync, TransferPin or TransferRead
	Arena realize.ArenaName `json:"arena"`
	// Path is the file (sync, read) or the path pinned (pin); empty for a
	// read of a file whose path the daemon does not know (then Blob says
	// which content).
	Path    realize.Path  `json:"path"`
	Blob    *realize.Hash `json:"blob,omitempty"`
	Current realize.Path  `json:"current,omitempty"` // pin: the file being filled now
	// Peer is the peer the latest bytes came from (absent before any came).
	Peer     *realize.PeerID `json:"peer,omitempty"`
	PeerName string          `json:"peer_name,omitempty"`
	// Bytes is the total to move (sync, pin) or the file's size (read);
	// BytesDone is what has arrived: for sync, the bytes received from
	// peers (blocks found locally are not counted), for pin the bytes of
	// the files filled so far, for read the bytes fetched since the reads
	// began.
	Bytes     int64 `json:"bytes"`
	BytesDone int64 `json:"bytes_done"`
	// Files and FilesDone count the files of a pin.
	Files     int `json:"files,omitempty"`
	FilesDone int `json:"files_done,omitempty"`
	// Rate is bytes per second received over the last few seconds.
	Rate    int64     `json:"rate"`
	Started time.Time `json:"started"`
}
