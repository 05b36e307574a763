package consensus

import (
	"bytes"

	"github.com/realizefs/realize"
)

// Action is what to do with a remote version of a path.
type Action int

const (
	// Ignore: the local version already includes the remote one.
	Ignore Action = iota
	// Apply: the remote version follows the local one; take it.
	Apply
	// Resolve: the versions are concurrent; the path takes Result (the
	// winner, under a version that dominates both) and Loser is kept aside.
	Resolve
)

func (a Action) String() string { return [...]string{"ignore", "apply", "resolve"}[a] }

// Decision is the outcome of Decide.
type Decision struct {
	Action Action
	// Result is what the path holds afterwards (Apply, Resolve).
	Result realize.Alternative
	// Loser is the version kept under conflicts/ (Resolve only). Nil when
	// nothing needs keeping: the loser was a deletion, or both sides hold
	// the same thing.
	Loser *realize.Alternative
}

// Decide compares the local version of a path with a remote one. It is a
// pure function of its arguments, and symmetric for concurrent versions:
// every peer that sees the same two versions, in either order, reaches the
// same Result — which is what makes the household converge.
func Decide(local, remote realize.Alternative) Decision {
	switch remote.Version.Compare(local.Version) {
	case realize.Equal, realize.Before:
		return Decision{Action: Ignore}
	case realize.After:
		return Decision{Action: Apply, Result: remote}
	}
	winner, loser := Winner(local, remote)
	d := Decision{Action: Resolve, Result: winner}
	d.Result.Version = local.Version.Merge(remote.Version)
	if loser.Meta.Kind != realize.KindNone && !sameContent(winner.Meta, loser.Meta) {
		d.Loser = &loser
	}
	return d
}

// Winner orders two concurrent versions the same way on every peer:
//
//  1. something beats nothing: an edit wins over a concurrent deletion
//     (the edit's bytes are never lost);
//  2. the later modification time wins;
//  3. then the larger origin peer id;
//  4. then the larger content hash (two versions from the same origin with
//     the same mtime cannot be concurrent in practice, but the order must
//     be total for the rule to be deterministic).
func Winner(a, b realize.Alternative) (winner, loser realize.Alternative) {
	if beats(a, b) {
		return a, b
	}
	return b, a
}

func beats(a, b realize.Alternative) bool {
	aLive, bLive := a.Meta.Kind != realize.KindNone, b.Meta.Kind != realize.KindNone
	if aLive != bLive {
		return aLive
	}
	if a.Meta.MTime != b.Meta.MTime {
		return a.Meta.MTime > b.Meta.MTime
	}
	if c := bytes.Compare(a.Origin[:], b.Origin[:]); c != 0 {
		return c > 0
	}
	return bytes.Compare(a.Meta.Blob[:], b.Meta.Blob[:]) > 0
}

// sameContent tells whether two versions hold the same thing, in which
// case concurrency is no conflict: nothing differs that could be lost.
func sameContent(a, b realize.Meta) bool {
	return a.Kind == b.Kind && a.Blob == b.Blob && a.Target == b.Target && a.Exec == b.Exec
}
