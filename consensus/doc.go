// Package consensus applies remote changes to the local view of an arena.
//
// Decide compares the local version of a path with a remote one by their
// version vectors: what causally follows is applied, what precedes is
// ignored, and concurrent versions are resolved by a rule every peer
// applies identically (Winner): an edit beats a deletion, then the later
// mtime, then the larger origin peer id. The path takes the winner under
// the merge of both version vectors, so the result dominates both and is
// itself never in conflict again; the loser is kept aside. The decision is
// recorded as an OpConflict history entry that carries the losers, so a
// peer that only ever sees the merged result still learns of them and
// lists the same conflicts (docs/decisions/0006-consensus-frontier.md).
//
// A person settles a conflict with Applier.Resolve (resolve.go): an
// OpResolve entry that keeps one version at the path and drops the
// versions kept aside, on every peer (docs/decisions/0015-conflict-
// resolution.md). Placing files (real.Arena.Place) and fetching their
// blocks (fetch.go) are the rest of applying.
package consensus
