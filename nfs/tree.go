package nfs

import (
	"context"
	"io"

	"github.com/realizefs/realize"
)

// Tree is what the NFS server needs of the household share: one Arena per
// exported arena. The daemon builds it over real directories and the
// cache (see FromArena); tests use an in-memory fake. Paths are always
// validated realize.Paths relative to the arena's root; the server never
// hands the implementation anything it parsed without ParsePath.
type Tree interface {
	Arenas() []Arena
	// FSStat reports the space the export offers: the cache quota as
	// total, what is left of it as free (SPEC §4.7).
	FSStat(ctx context.Context) (FSStat, error)
}

// FSStat is what statfs shows.
type FSStat struct {
	TotalBytes, FreeBytes, AvailBytes uint64
	TotalFiles, FreeFiles             uint64
}

// Node is one path of the merged view.
type Node struct {
	Name realize.Path // the last element (its full path for Stat)
	Meta realize.Meta // Kind, Size, MTime, Exec, Target (Blob for files when known)
	// Real says the bytes are in the real directory (else they come from
	// the cache and peers).
	Real bool
}

// Arena is one arena of the share: the union of its real directory and
// the household listing.
type Arena interface {
	Name() realize.ArenaName
	// Stat returns the node at path; a realize.NotExist error when nothing
	// is there.
	Stat(ctx context.Context, path realize.Path) (Node, error)
	// List returns dir's children, sorted by name.
	List(ctx context.Context, dir realize.Path) ([]Node, error)
	// Open opens a file for reading. Reads of unreal bytes fetch the
	// blocks needed (verified) and fail with a realize.Unavailable error
	// after a bounded wait when no peer has them.
	Open(ctx context.Context, path realize.Path) (ReadFile, error)

	// The merged (read-write) view only. Writes land in the real
	// directory; the first write to an unreal file realizes it first.
	OpenWrite(ctx context.Context, path realize.Path, create, truncate bool) (WriteFile, error)
	Mkdir(ctx context.Context, path realize.Path) error
	Symlink(ctx context.Context, path realize.Path, target string) error
	// Remove removes a file, symlink or empty directory; a directory
	// with children fails with a realize.NotEmpty error.
	Remove(ctx context.Context, path realize.Path) error
	Rename(ctx context.Context, from, to realize.Path) error
	SetAttr(ctx context.Context, path realize.Path, a SetAttr) error

	// Conflicts lists the versions kept aside for the arena (the
	// conflicts/<arena>/ tree); OpenConflict reads one; RemoveConflict
	// deletes one (a resolution by the user).
	Conflicts(ctx context.Context) ([]ConflictVersion, error)
	OpenConflict(ctx context.Context, c ConflictVersion) (ReadFile, error)
	RemoveConflict(ctx context.Context, c ConflictVersion) error
}

// SetAttr is a SETATTR: nil fields are left alone.
type SetAttr struct {
	Size  *int64 // truncate (realizes an unreal file first)
	MTime *int64 // Unix nanoseconds
	Exec  *bool
}

// ConflictVersion is one kept-aside version of a path, shown as
// conflicts/<arena>/<path>/<Name>.
type ConflictVersion struct {
	Path realize.Path // the contested path
	Name string       // "<peer>-<shorthash><.ext>"
	Meta realize.Meta
}

// ReadFile is an open file for reading.
type ReadFile interface {
	io.ReaderAt
	io.Closer
	Size() int64
}

// WriteFile is an open real file for writing.
type WriteFile interface {
	io.ReaderAt
	io.WriterAt
	io.Closer
	Truncate(size int64) error
	Sync() error
}
