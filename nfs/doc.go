// Package nfs serves the household share over NFSv3 on loopback (go-nfs,
// go-billy), MOUNT and NFS on one port, no portmapper.
//
// A Server serves a Tree: one Arena per arena, each the merged view of its
// real directory and the household listing. The export root lists one
// directory per arena plus conflicts/ (kept-aside conflict versions as
// conflicts/<arena>/<path>/<version>; read-only, deleting one resolves it).
// Two views: the merged read-write view at "/" (writes land in the real
// directory, through the Tree) and a read-only all-files view at "/.all"
// (every write is NFS3ERR_ROFS; the overlayfs lower layer on Linux). Any
// directory can be mounted ("/photos", "/.all/photos"); "/share" is an
// alias of "/".
//
// File handles are persistent: every export path shown gets an id kept in
// the database (bucket "nfs"), never reused; a rename through NFS moves the
// ids of the renamed tree, a removal forgets them (their handles are then
// NFS3ERR_STALE). Handles stay valid across restarts on the same database.
//
// Errors of the Tree (*realize.Error kinds) map to NFS statuses in one
// place (errors.go); Unavailable is an I/O error, so reading an unreal file
// no peer can serve fails with EIO after the Tree's bounded wait.
//
// go-nfs v0.0.4 gets a few things wrong at the RPC level; a filter on each
// connection (wire.go) fixes them: see docs/decisions/0008-nfs-server.md.
package nfs
