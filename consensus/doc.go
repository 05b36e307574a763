// Package consensus applies remote changes to the local view of an arena.
//
// Decide (implemented) compares the local version of a path with a remote
// one by their version vectors: what causally follows is applied, what
// precedes is ignored, and concurrent versions are resolved by a rule every
// peer applies identically (Winner): an edit beats a deletion, then the
// later mtime, then the larger origin peer id. The path takes the winner
// under the merge of both version vectors, so the result dominates both and
// is itself never in conflict again; the loser is kept aside. The decision
// is recorded as an OpConflict history entry that carries the losers, so a
// peer that only ever sees the merged result still learns of them and lists
// the same conflicts.
//
// Still to come with the household step: placing files (temp file, then
// rename only if the local file is still what the index says, else the
// local change is recorded first and the decision taken again), the
// conflict store, and the download, realize and unrealize jobs.
package consensus
