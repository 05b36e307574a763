package nfs

import (
	"bufio"
	"encoding/binary"
	"io"
	"math"
	"net"
	"strings"
	"sync"

	"github.com/realizefs/realize"
	gonfs "github.com/willscott/go-nfs"
)

// The wire filter sits between the client and go-nfs on every connection
// and fixes, at the RPC level, what go-nfs v0.0.4 gets wrong and our
// filesystem layer cannot (docs/decisions/0008-nfs-server.md):
//
//   - READ asking more than 16 MiB: go-nfs decides EOF before capping the
//     count, so a big READ that reaches the end returns 16 MiB flagged
//     EOF. The count is capped in the request instead.
//   - READ at an offset of 2^63 or more: go-nfs casts it to a negative
//     int64 and fails with NFS3ERR_IO. Every file ends before 2^63, so the
//     offset is clamped to 2^63-1 and the READ answers EOF, no bytes.
//   - SYMLINK with an empty target, or one holding NUL: go-nfs answers
//     NFS3ERR_ACCES; we answer NFS3ERR_INVAL (NAMETOOLONG past
//     realize.MaxPathLen), as Linux's server does.
//   - RMDIR/REMOVE of a non-empty directory: go-nfs answers NFS3ERR_IO; we
//     answer NFS3ERR_NOTEMPTY.
//   - names with '/' or NUL, "." or "..", over-long names: refused with
//     NFS3ERR_INVAL / NFS3ERR_NAMETOOLONG before go-nfs joins them into a
//     path where they would read as several components.
//   - RENAME across arenas: NFS3ERR_XDEV.
//   - CREATE EXCLUSIVE (O_EXCL; go-nfs: NOTSUPP): done as GUARDED.
//   - LINK (go-nfs decodes its arguments wrongly) and MKNOD: NOTSUPP.
//   - accept_stat codes: go-nfs numbers them off by one from PROC_UNAVAIL
//     on (RFC 5531: PROG_UNAVAIL 1, PROG_MISMATCH 2, PROC_UNAVAIL 3,
//     GARBAGE_ARGS 4, SYSTEM_ERR 5); replies are renumbered. Unknown
//     programs get PROG_UNAVAIL, other versions PROG_MISMATCH (3..3).

const (
	progNFS   = 100003
	progMount = 100005

	procLookup  = 3
	procRead    = 6
	procCreate  = 8
	procMkdir   = 9
	procSymlink = 10
	procMknod   = 11
	procRemove  = 12
	procRmdir   = 13
	procRename  = 14
	procLink    = 15

	maxInspect = 64 << 10 // requests up to this size are parsed (all but big WRITEs)
)

type fixListener struct {
	net.Listener
	s *Server
}

func (l *fixListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	fc := &fixConn{Conn: c, s: l.s, r: bufio.NewReaderSize(c, 64<<10), done: make(chan struct{})}
	if !l.s.track(fc, true) {
		_ = fc.Close()
		return nil, net.ErrClosed
	}
	return fc, nil
}

type fixConn struct {
	net.Conn
	s *Server

	// read side (only go-nfs's reading goroutine)
	r          *bufio.Reader
	pending    []byte
	passRemain int64

	// shutdown
	mu      sync.Mutex
	busy    bool // a request was handed to go-nfs and it has not asked for the next
	closing bool
	once    sync.Once
	done    chan struct{}

	// write side
	wmu     sync.Mutex
	hdr     [4]byte
	hdrN    int
	remain  uint32 // bytes left in the current fragment
	holding bool   // collecting the start of a reply to fix it
	hold    []byte
	want    int
	queue   [][]byte // our own replies, sent at the next record boundary
	werr    error
}

func (c *fixConn) Close() error {
	var err error
	c.once.Do(func() {
		err = c.Conn.Close()
		c.s.track(c, false)
		close(c.done)
	})
	return err
}

// stop closes the connection now if it is idle, else at the end of the
// request being handled.
func (c *fixConn) stop() {
	c.mu.Lock()
	c.closing = true
	busy := c.busy
	c.mu.Unlock()
	if !busy {
		_ = c.Close()
	}
}

func (c *fixConn) Read(p []byte) (int, error) {
	for {
		if len(c.pending) > 0 {
			n := copy(p, c.pending)
			c.pending = c.pending[n:]
			return n, nil
		}
		if c.passRemain > 0 {
			lim := int64(len(p))
			if lim > c.passRemain {
				lim = c.passRemain
			}
			n, err := c.r.Read(p[:lim])
			c.passRemain -= int64(n)
			return n, err
		}
		// A record boundary: go-nfs is done with the previous request.
		c.mu.Lock()
		c.busy = false
		closing := c.closing
		c.mu.Unlock()
		if closing {
			_ = c.Close()
			return 0, io.EOF
		}
		var hdr [4]byte
		if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
			return 0, err
		}
		fl := binary.BigEndian.Uint32(hdr[:])
		size := int64(fl & 0x7fffffff)
		if fl&(1<<31) == 0 || size > maxInspect {
			// Fragmented (go-nfs refuses it) or big (a WRITE): as is.
			if b, err := c.r.Peek(24); err == nil && size >= 24 {
				c.s.ops.countHeader(b)
			}
			if !c.begin() {
				return 0, io.EOF
			}
			c.pending = hdr[:]
			c.passRemain = size
			continue
		}
		body := make([]byte, size)
		if _, err := io.ReadFull(c.r, body); err != nil {
			return 0, err
		}
		out, reply := c.filter(body)
		if reply != nil {
			if err := c.inject(reply); err != nil {
				return 0, err
			}
			continue
		}
		if !c.begin() {
			return 0, io.EOF
		}
		rec := make([]byte, 4+len(out))
		binary.BigEndian.PutUint32(rec, uint32(len(out))|1<<31)
		copy(rec[4:], out)
		c.pending = rec
	}
}

// begin marks a request handed to go-nfs; false when shutting down.
func (c *fixConn) begin() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	c.busy = true
	return true
}

// xdrReader reads an RPC call body.
type xdrReader struct {
	b   []byte
	off int
	bad bool
}

func (x *xdrReader) u32() uint32 {
	if x.off+4 > len(x.b) {
		x.bad = true
		return 0
	}
	v := binary.BigEndian.Uint32(x.b[x.off:])
	x.off += 4
	return v
}

func (x *xdrReader) opaque(max int) []byte {
	n := int(x.u32())
	if x.bad || n > max || x.off+n > len(x.b) {
		x.bad = true
		return nil
	}
	v := x.b[x.off : x.off+n]
	x.off += (n + 3) &^ 3
	if x.off > len(x.b) {
		x.bad = true
	}
	return v
}

// sattr3 skips a sattr3: mode, uid, gid (optional uint32s), size
// (optional uint64), atime and mtime (how; a time when set by the client).
func (x *xdrReader) sattr3() {
	for _, n := range []int{4, 4, 4, 8} {
		if x.u32() != 0 {
			x.off += n
		}
	}
	for range 2 {
		if x.u32() == 2 { // SET_TO_CLIENT_TIME
			x.off += 8
		}
	}
	if x.off > len(x.b) {
		x.bad = true
	}
}

// filter inspects one call. It returns the call to hand to go-nfs (maybe
// rewritten), or a reply of our own (the call is then not handed on).
func (c *fixConn) filter(body []byte) (out, reply []byte) {
	x := &xdrReader{b: body}
	xid := x.u32()
	mtype := x.u32()
	_ = x.u32() // rpcvers: go-nfs's concern
	prog, vers, proc := x.u32(), x.u32(), x.u32()
	x.u32()
	x.opaque(400) // credential
	x.u32()
	x.opaque(400) // verifier
	if x.bad || mtype != 0 {
		return body, nil // go-nfs drops it
	}
	c.s.ops.count(prog, vers, proc)
	switch {
	case prog != progNFS && prog != progMount:
		return nil, acceptReply(xid, 1, nil) // PROG_UNAVAIL
	case vers != 3:
		return nil, acceptReply(xid, 2, []uint32{3, 3}) // PROG_MISMATCH
	case prog == progMount:
		return body, nil
	}
	nfsFail := func(st gonfs.NFSStatus, zeros int) []byte {
		b := make([]uint32, 1+zeros)
		b[0] = uint32(st)
		return acceptReply(xid, 0, b)
	}
	switch proc {
	case procRead:
		x.opaque(64)
		if x.off+12 <= len(body) && !x.bad {
			if binary.BigEndian.Uint64(body[x.off:]) > math.MaxInt64 {
				binary.BigEndian.PutUint64(body[x.off:], math.MaxInt64)
			}
			if binary.BigEndian.Uint32(body[x.off+8:]) > gonfs.MaxRead {
				binary.BigEndian.PutUint32(body[x.off+8:], gonfs.MaxRead)
			}
		}
		return body, nil
	case procLink:
		return nil, nfsFail(gonfs.NFSStatusNotSupp, 3) // post_op_attr, wcc_data
	case procMknod:
		return nil, nfsFail(gonfs.NFSStatusNotSupp, 2) // wcc_data
	case procLookup:
		x.opaque(64)
		name := x.opaque(1 << 16)
		if x.bad {
			return body, nil
		}
		if s := string(name); s != "." && s != ".." {
			if st := nameStatus(s); st != gonfs.NFSStatusOk {
				return nil, nfsFail(st, 1) // post_op_attr
			}
		}
		return body, nil
	case procCreate, procMkdir, procSymlink, procRemove, procRmdir:
		dir := x.opaque(64)
		name := x.opaque(1 << 16)
		if x.bad {
			return body, nil
		}
		if st := nameStatus(string(name)); st != gonfs.NFSStatusOk {
			return nil, nfsFail(st, 2) // wcc_data
		}
		switch proc {
		case procSymlink:
			x.sattr3()
			target := x.opaque(maxInspect)
			if x.bad {
				return body, nil
			}
			if st := targetStatus(string(target)); st != gonfs.NFSStatusOk {
				return nil, nfsFail(st, 2) // wcc_data
			}
		case procRemove, procRmdir:
			if c.nonEmptyDir(dir, string(name)) {
				return nil, nfsFail(gonfs.NFSStatusNotEmpty, 2)
			}
		case procCreate:
			if x.off+4 <= len(body) && binary.BigEndian.Uint32(body[x.off:]) == 2 { // EXCLUSIVE
				// how = GUARDED, with an empty sattr3 instead of the verifier.
				nb := make([]byte, 0, len(body)+16)
				nb = append(nb, body[:x.off]...)
				nb = binary.BigEndian.AppendUint32(nb, 1)
				nb = append(nb, make([]byte, 24)...)
				if x.off+12 <= len(body) {
					nb = append(nb, body[x.off+12:]...)
				}
				return nb, nil
			}
		}
		return body, nil
	case procRename:
		fdir := x.opaque(64)
		fname := x.opaque(1 << 16)
		tdir := x.opaque(64)
		tname := x.opaque(1 << 16)
		if x.bad {
			return body, nil
		}
		for _, n := range []string{string(fname), string(tname)} {
			if st := nameStatus(n); st != gonfs.NFSStatusOk {
				return nil, nfsFail(st, 4) // two wcc_data
			}
		}
		if c.crossArena(fdir, tdir) {
			return nil, nfsFail(gonfs.NFSStatusXDev, 4)
		}
		return body, nil
	}
	return body, nil
}

// nameStatus checks a name given by a client.
func nameStatus(name string) gonfs.NFSStatus {
	if len(name) > realize.MaxNameLen {
		return gonfs.NFSStatusNameTooLong
	}
	if realize.CheckName(name) != nil {
		return gonfs.NFSStatusInval
	}
	return gonfs.NFSStatusOk
}

// targetStatus checks a symlink target given by a client. Its path is
// the client's business (the server never follows symlinks), its bytes
// are not.
func targetStatus(target string) gonfs.NFSStatus {
	switch {
	case target == "", strings.IndexByte(target, 0) >= 0:
		return gonfs.NFSStatusInval
	case len(target) > realize.MaxPathLen:
		return gonfs.NFSStatusNameTooLong
	}
	return gonfs.NFSStatusOk
}

// nonEmptyDir tells whether name in directory handle dir is a directory
// with children.
func (c *fixConn) nonEmptyDir(dir []byte, name string) bool {
	f, p, err := c.s.fromHandle(dir)
	if err != nil {
		return false
	}
	m := f.(*mountFS)
	xp, err := m.xpath(joinPath(append(p, name)...))
	if err != nil {
		return false
	}
	n, err := c.s.resolve(c.s.ctx, xp)
	if err != nil || !n.isDir() {
		return false
	}
	children, err := c.s.list(c.s.ctx, n)
	return err == nil && len(children) > 0
}

// crossArena tells whether two directory handles lie in different
// arenas (or one in conflicts/).
func (c *fixConn) crossArena(a, b []byte) bool {
	top := func(fh []byte) (string, bool) {
		f, p, err := c.s.fromHandle(fh)
		if err != nil {
			return "", false
		}
		xp, err := f.(*mountFS).xpath(joinPath(p...))
		if err != nil {
			return "", false
		}
		t, _, _ := strings.Cut(xp, "/")
		return t, true
	}
	ta, oka := top(a)
	tb, okb := top(b)
	return oka && okb && ta != tb && ta != "" && tb != ""
}

// acceptReply builds an accepted reply record with accept_stat stat and
// the given body words.
func acceptReply(xid, stat uint32, words []uint32) []byte {
	b := make([]byte, 4, 4+24+4*len(words))
	for _, v := range []uint32{xid, 1, 0, 0, 0, stat} { // REPLY, MSG_ACCEPTED, AUTH_NULL verifier
		b = binary.BigEndian.AppendUint32(b, v)
	}
	for _, v := range words {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	binary.BigEndian.PutUint32(b, uint32(len(b)-4)|1<<31)
	return b
}

// inject sends a reply of our own between go-nfs's records.
func (c *fixConn) inject(rec []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return c.werr
	}
	if c.boundary() {
		_, err := c.Conn.Write(rec)
		c.werr = err
		return err
	}
	c.queue = append(c.queue, rec)
	return nil
}

func (c *fixConn) boundary() bool { return c.hdrN == 0 && c.remain == 0 && !c.holding }

// Write receives go-nfs's reply records (a 4-byte header, then the reply,
// in pieces of any size), renumbers accept_stat and passes them on.
func (c *fixConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	total := len(p)
	for len(p) > 0 {
		if c.werr != nil {
			return 0, c.werr
		}
		switch {
		case c.holding:
			n := min(c.want-(len(c.hold)-4), len(p))
			c.hold = append(c.hold, p[:n]...)
			p = p[n:]
			c.remain -= uint32(n)
			if len(c.hold)-4 == c.want {
				fixReply(c.hold[4:])
				c.holding = false
				c.send(c.hold)
			}
		case c.remain > 0:
			n := min(int(c.remain), len(p))
			c.send(p[:n])
			p = p[n:]
			c.remain -= uint32(n)
		default:
			n := min(4-c.hdrN, len(p))
			copy(c.hdr[c.hdrN:], p[:n])
			c.hdrN += n
			p = p[n:]
			if c.hdrN == 4 {
				c.hdrN = 0
				c.remain = binary.BigEndian.Uint32(c.hdr[:]) & 0x7fffffff
				c.want = min(24, int(c.remain))
				c.hold = append(c.hold[:0], c.hdr[:]...)
				c.holding = true
				if c.want == 0 {
					c.holding = false
					c.send(c.hold)
				}
			}
		}
		if c.boundary() && len(c.queue) > 0 {
			for _, rec := range c.queue {
				c.send(rec)
			}
			c.queue = nil
		}
	}
	if c.werr != nil {
		return 0, c.werr
	}
	return total, nil
}

func (c *fixConn) send(b []byte) {
	if c.werr != nil {
		return
	}
	if _, err := c.Conn.Write(b); err != nil {
		c.werr = err
	}
}

// fixReply renumbers go-nfs's accept_stat (it counts PROC_UNAVAIL as 2,
// GARBAGE_ARGS as 3, SYSTEM_ERR as 4) and reject_stat (5, 6 for
// RPC_MISMATCH 0, AUTH_ERROR 1).
func fixReply(b []byte) {
	if len(b) < 16 || binary.BigEndian.Uint32(b[4:]) != 1 {
		return
	}
	switch binary.BigEndian.Uint32(b[8:]) {
	case 0: // accepted: verifier (flavor, length 0), accept_stat
		if len(b) < 24 || binary.BigEndian.Uint32(b[16:]) != 0 {
			return
		}
		switch st := binary.BigEndian.Uint32(b[20:]); st {
		case 2, 3, 4:
			binary.BigEndian.PutUint32(b[20:], st+1)
		}
	case 1: // denied
		switch st := binary.BigEndian.Uint32(b[12:]); st {
		case 5, 6:
			binary.BigEndian.PutUint32(b[12:], st-5)
		}
	}
}
