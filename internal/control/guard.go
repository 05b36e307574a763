package control

import (
	"time"

	"github.com/realizefs/realize"
)

// HeldDeletions are an arena's deletions held by its delete guard
// (config delete_guard): found on this peer, not recorded in its history
// and so not sent to other peers, until `realize approve` or until the
// files come back. In ArenaStatus; scripts rely on these names.
type HeldDeletions struct {
	Since time.Time `json:"since"`
	// Reason is "share" (more than the arena's delete_guard of its files)
	// or "empty" (the arena's directory was found empty).
	Reason  string  `json:"reason"`
	Files   int64   `json:"files"`   // files and symlinks
	Dirs    int64   `json:"dirs"`    // directories
	Percent float64 `json:"percent"` // Files as a share of the arena's files
	// Sample names a few of the topmost held paths (a held directory
	// stands for everything held below it).
	Sample []realize.Path `json:"sample"`
	// Guard is the arena's delete_guard in percent; 0 = off.
	Guard float64 `json:"guard_percent"`
}

// ApproveRequest asks to record held deletions: of one arena, or (empty
// Arena) of every arena that holds some. With Reject, the deletions are
// undone instead: the files are put back from the household.
type ApproveRequest struct {
	Arena  realize.ArenaName `json:"arena,omitempty"`
	Reject bool              `json:"reject,omitempty"`
}

// ApproveReport is the outcome of `realize approve`.
type ApproveReport struct {
	Approved []ApprovedArena `json:"approved"`
}

// ApprovedArena is what approving recorded in one arena.
type ApprovedArena struct {
	Arena realize.ArenaName `json:"arena"`
	Files int64             `json:"files"` // file and symlink deletions recorded
	Dirs  int64             `json:"dirs"`  // directory deletions recorded
	// StillHeld counts deletions found after the hold was last shown:
	// they were not approved and stay held.
	StillHeld int64 `json:"still_held"`
	// With Reject: paths put back (files as unreal: their bytes are on
	// other peers), and held files that could not be (no other copy).
	Restored int64         `json:"restored,omitempty"`
	Kept     []PathFailure `json:"kept,omitempty"`
}
