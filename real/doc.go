// Package real manages the local real directories: the plain folders on this
// peer's disk that hold an arena's real files, readable and writable without
// the daemon.
//
// It keeps the local index — what each path in the real directory looked
// like when it was last recorded — in step with the disk, and turns every
// difference into a history entry:
//
//   - Scan: an initial full walk, and later walks of single directories and
//     files, compare the disk with the index. A file whose cheap identity
//     (Stat: size, mtime, ctime, inode) is unchanged is not read again.
//   - Watch: fsnotify tells which directories and files may have changed,
//     debounced into batches, so most changes are picked up in well under a
//     second without a full walk. Periodic rescans remain the safety net for
//     lost events and the only source of changes where watching is not
//     possible (Watcher.Watching reports false).
//   - Hash: a changed file is read once to get its blob hash (BLAKE3-256 of
//     the whole content, the same digest b3sum prints) and its block map
//     (content-defined chunks, each named by its own BLAKE3-256), which
//     peers use to fetch and verify exactly the parts they read. A file that
//     changes while it is being hashed is reported as realize.Changed and
//     retried later, so the index never records a hash of bytes that were
//     never on disk at once.
//   - Ignore: .realizeignore files, with .gitignore syntax and scoping, keep
//     paths out of the index; the daemon's own temporary files are always
//     ignored.
//   - Index: the recorded state lives in the daemon's database, per arena,
//     together with the block maps of the blobs it refers to.
//
// Placing downloaded files into the real directory atomically, and taking
// files out of it on unpin, belong to this package too. Nothing here follows
// a symlink inside a real directory, so nothing outside the arena is read or
// written through one.
package real
