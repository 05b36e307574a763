package nfs

import (
	"encoding/binary"
	"sync/atomic"
)

// opCounts counts the calls the server receives, by procedure, for the
// daemon's metrics. The wire filter counts each call as it reads it
// (wire.go), so every call is counted once, including those it answers
// itself.
type opCounts struct {
	nfs   [nfsProcs]atomic.Int64
	mount atomic.Int64
	other atomic.Int64 // other programs, versions or procedure numbers
}

const nfsProcs = 22 // NULL (0) to COMMIT (21), RFC 1813

// procName names an NFSv3 procedure as RFC 1813 does.
func procName(p int) string {
	return [nfsProcs]string{"NULL", "GETATTR", "SETATTR", "LOOKUP", "ACCESS", "READLINK", "READ", "WRITE",
		"CREATE", "MKDIR", "SYMLINK", "MKNOD", "REMOVE", "RMDIR", "RENAME", "LINK", "READDIR", "READDIRPLUS",
		"FSSTAT", "FSINFO", "PATHCONF", "COMMIT"}[p]
}

func (o *opCounts) count(prog, vers, proc uint32) {
	switch {
	case prog == progNFS && vers == 3 && proc < nfsProcs:
		o.nfs[proc].Add(1)
	case prog == progMount:
		o.mount.Add(1)
	default:
		o.other.Add(1)
	}
}

// countHeader counts a call from the start of its record (a call too big
// for the filter to inspect: a WRITE).
func (o *opCounts) countHeader(b []byte) {
	if len(b) < 24 || binary.BigEndian.Uint32(b[4:]) != 0 { // not a call
		return
	}
	o.count(binary.BigEndian.Uint32(b[12:]), binary.BigEndian.Uint32(b[16:]), binary.BigEndian.Uint32(b[20:]))
}

// Ops returns how many calls the server has received since it was made,
// by NFSv3 procedure name ("READ", "WRITE", ...; only those called at
// least once), MOUNT protocol calls under "MOUNT", and calls of other
// programs, versions or procedures under "OTHER".
func (s *Server) Ops() map[string]int64 {
	out := map[string]int64{}
	for p := range nfsProcs {
		if n := s.ops.nfs[p].Load(); n > 0 {
			out[procName(p)] = n
		}
	}
	if n := s.ops.mount.Load(); n > 0 {
		out["MOUNT"] = n
	}
	if n := s.ops.other.Load(); n > 0 {
		out["OTHER"] = n
	}
	return out
}
