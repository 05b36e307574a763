// Package nfs will serve the household share over NFSv3 (go-nfs, go-billy)
// on loopback: a merged read-write view and a read-only all-files view,
// persistent file handles, on-demand block fetching for reads, the
// conflicts/ tree, and the mount helpers (overlayfs on Linux, mount_nfs on
// macOS).
//
// Nothing is implemented yet: this arrives with the unreal/NFS step.
package nfs
