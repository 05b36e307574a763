package consensus

import (
	"bytes"
	"sort"

	"github.com/realizefs/realize"
)

// A path's state, for consensus, is its frontier: the versions of it that
// no other known version causally follows, each with its own version
// vector. Usually that is one version. When concurrent versions meet, the
// frontier holds all of them; the path shows the one Winner picks, under
// the merge of all their vectors, and the others are conflict losers.
//
// Deciding over the frontier rather than pairwise in arrival order is what
// makes the outcome a function of the set of versions known: two peers that
// learn the same versions in different orders end with the same frontier,
// the same winner and the same merged version.

// Decision is the outcome of Decide.
type Decision struct {
	// Changed is false when the incoming versions add nothing.
	Changed bool
	// Result is the winner, with Version set to the merge of the frontier.
	Result realize.Alternative
	// Own is the winner's own version vector.
	Own realize.VersionVector
	// Others are the rest of the frontier (deletions included), sorted.
	Others []realize.Alternative
}

// Conflict tells whether the frontier holds more than one version.
func (d Decision) Conflict() bool { return len(d.Others) > 0 }

// Losers returns the frontier members other than the winner that hold
// something (a deletion that lost has nothing to keep).
func (d Decision) Losers() []realize.Alternative {
	var out []realize.Alternative
	for _, o := range d.Others {
		if o.Meta.Kind != realize.KindNone && !sameContent(o.Meta, d.Result.Meta) {
			out = append(out, o)
		}
	}
	return out
}

// Decide adds incoming versions to a path's frontier. local is the current
// frontier (empty for an unknown path); incoming are the versions an entry
// carries (its own, plus the frontier it recorded for a conflict).
func Decide(local, incoming []realize.Alternative) Decision {
	front := maximal(append(append([]realize.Alternative(nil), local...), incoming...))
	if sameVersions(front, maximal(local)) {
		return Decision{}
	}
	sort.Slice(front, func(i, j int) bool { return beats(front[i], front[j]) })
	d := Decision{Changed: true, Result: front[0], Own: front[0].Version, Others: front[1:]}
	var merged realize.VersionVector
	for _, a := range front {
		merged = merged.Merge(a.Version)
	}
	d.Result.Version = merged
	return d
}

// maximal returns the versions no other one causally follows, one per
// distinct version vector. Two different things under one vector are two
// resolutions of the same state made at once (see
// realize.ResolveCounter): the one beats ranks first stays.
func maximal(all []realize.Alternative) []realize.Alternative {
	var out []realize.Alternative
	for i, a := range all {
		keep := true
		for j, b := range all {
			if i == j {
				continue
			}
			switch o := b.Version.Compare(a.Version); {
			case o == realize.After:
				keep = false
			case o == realize.Equal && identical(a, b):
				keep = j > i // a duplicate: the first one stays
			case o == realize.Equal:
				keep = !beats(b, a)
			}
			if !keep {
				break
			}
		}
		if keep {
			out = append(out, a)
		}
	}
	return out
}

// identical tells whether two versions are the same in every field Decide
// looks at but the vector.
func identical(a, b realize.Alternative) bool {
	return a.Origin == b.Origin && a.Meta == b.Meta
}

func sameVersions(a, b []realize.Alternative) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		found := false
		for _, y := range b {
			if x.Version.Compare(y.Version) == realize.Equal && identical(x, y) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// Winner orders two concurrent versions the same way on every peer; see
// beats.
func Winner(a, b realize.Alternative) (winner, loser realize.Alternative) {
	if beats(a, b) {
		return a, b
	}
	return b, a
}

// beats is the total order concurrent versions are ranked by:
//
//  1. something beats nothing: an edit wins over a concurrent deletion
//     (the edit's bytes are never lost);
//  2. the later modification time wins;
//  3. then the larger origin peer id;
//  4. then the larger content hash, then the kind, the symlink target, the
//     exec bit and the size (total, so that the rule is deterministic
//     whatever the inputs).
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
	if c := bytes.Compare(a.Meta.Blob[:], b.Meta.Blob[:]); c != 0 {
		return c > 0
	}
	if a.Meta.Kind != b.Meta.Kind {
		return a.Meta.Kind > b.Meta.Kind
	}
	if a.Meta.Target != b.Meta.Target {
		return a.Meta.Target > b.Meta.Target
	}
	if a.Meta.Exec != b.Meta.Exec {
		return a.Meta.Exec
	}
	return a.Meta.Size > b.Meta.Size
}

// sameContent tells whether two versions hold the same thing, in which
// case their concurrency loses nothing.
func sameContent(a, b realize.Meta) bool {
	return a.Kind == b.Kind && a.Blob == b.Blob && a.Target == b.Target && a.Exec == b.Exec
}
