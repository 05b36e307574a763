// Package consensus will apply remote changes to the local view of an
// arena: compare version vectors (realize.VersionVector.Compare), apply what
// causally follows, ignore what precedes, and turn concurrent versions into
// conflicts with a deterministic winner, keeping every loser. Placing a file
// (temp file, then rename only if the local file is still what the index
// says) and the download, realize and unrealize jobs live here too.
//
// Nothing is implemented yet: this arrives with the household step. The
// index already keeps what it needs: per-path version vectors and
// tombstones (see real.Record).
package consensus
