package nfs

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"io/fs"
	"math"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-billy/v5"
	gonfs "github.com/willscott/go-nfs"
)

// handler is our go-nfs Handler: MOUNT of any directory of either view,
// persistent handles, statfs from the Tree, and a short-lived cache of
// directory listings for READDIR(PLUS) continuations.
type handler struct {
	s *Server

	mu       sync.Mutex
	listings map[listingKey]listing
}

var (
	_ gonfs.Handler        = (*handler)(nil)
	_ gonfs.CachingHandler = (*handler)(nil)
)

// MountPrefixAll is the mount path prefix of the read-only all-files view.
const MountPrefixAll = "/.all"

// parseMountPath turns a MOUNT dirpath into a view and an export path.
// "/share" is accepted as an alias of the root ("/share/docs" = "/docs").
func parseMountPath(dirpath string) (view, string, error) {
	comps, err := splitPath(dirpath)
	if err != nil {
		return 0, "", err
	}
	v := viewMerged
	if len(comps) > 0 && comps[0] == "share" {
		comps = comps[1:]
	}
	if len(comps) > 0 && comps[0] == ".all" {
		v = viewAll
		comps = comps[1:]
	}
	return v, strings.Join(comps, "/"), nil
}

func (h *handler) Mount(ctx context.Context, _ net.Conn, req gonfs.MountRequest) (gonfs.MountStatus, billy.Filesystem, []gonfs.AuthFlavor) {
	s := h.s
	// go-nfs asks a handle of the returned filesystem even on failure: it
	// must never be nil.
	fallback := s.rootFS(viewMerged)
	v, xp, err := parseMountPath(string(req.Dirpath))
	if err != nil {
		return gonfs.MountStatusErrInval, fallback, nil
	}
	n, err := s.resolve(s.ctx, xp)
	if err != nil {
		switch statusOf(err) {
		case gonfs.NFSStatusNoEnt:
			return gonfs.MountStatusErrNoEnt, fallback, nil
		case gonfs.NFSStatusInval:
			return gonfs.MountStatusErrInval, fallback, nil
		}
		return gonfs.MountStatusErrIO, fallback, nil
	}
	if !n.isDir() {
		return gonfs.MountStatusErrNotDir, fallback, nil
	}
	id, err := s.handles.id(xp)
	if err != nil {
		s.log.Warn("nfs: mount", "path", string(req.Dirpath), "err", err)
		return gonfs.MountStatusErrIO, fallback, nil
	}
	s.log.Debug("nfs: mount", "path", string(req.Dirpath), "view", v.String())
	return gonfs.MountStatusOk, s.mountFS(v, id), []gonfs.AuthFlavor{gonfs.AuthFlavorNull}
}

// Change returns the attribute changer: none in the read-only view.
func (h *handler) Change(f billy.Filesystem) billy.Change {
	if m, ok := f.(*mountFS); ok && !m.readOnly() {
		return m
	}
	return nil
}

func (h *handler) FSStat(ctx context.Context, f billy.Filesystem, st *gonfs.FSStat) error {
	fs, err := h.s.tree.FSStat(ctx)
	if err != nil {
		return &gonfs.NFSStatusError{NFSStatus: statusOf(err), WrappedErr: err}
	}
	st.TotalSize, st.FreeSize, st.AvailableSize = fs.TotalBytes, fs.FreeBytes, fs.AvailBytes
	st.TotalFiles, st.FreeFiles, st.AvailableFiles = fs.TotalFiles, fs.FreeFiles, fs.FreeFiles
	if m, ok := f.(*mountFS); ok && m.readOnly() {
		st.AvailableSize, st.AvailableFiles = 0, 0
	}
	return nil
}

func (h *handler) ToHandle(f billy.Filesystem, path []string) []byte {
	m, ok := f.(*mountFS)
	if !ok {
		return nil
	}
	root, ok, err := h.s.handles.path(m.rootID)
	if err == nil && !ok {
		err = errStale
	}
	var id uint64
	if err == nil {
		xp := joinPath(append([]string{root}, path...)...)
		if m.view == viewAll {
			if to, ok := h.s.alias(h.s.ctx, xp); ok {
				xp = to // an old name still answering (alias.go)
			}
		}
		id, err = h.s.handles.id(xp)
	}
	if err != nil {
		h.s.log.Warn("nfs: no handle", "path", joinPath(path...), "err", err)
		return nil
	}
	return h.s.handles.encode(m.view, m.rootID, id)
}

func (h *handler) FromHandle(fh []byte) (billy.Filesystem, []string, error) {
	return h.s.fromHandle(fh)
}

// InvalidateHandle: the filesystem operations keep ids up to date
// themselves (a removal forgets them, a rename moves them).
func (h *handler) InvalidateHandle(billy.Filesystem, []byte) error { return nil }

// HandleLimit: handles are persistent, there is no limit to advertise
// (go-nfs caps READDIRPLUS replies at half of it).
func (h *handler) HandleLimit() int { return math.MaxInt32 }

// Listing cache: go-nfs lists a whole directory for every READDIR(PLUS)
// call and walks to the cookie; continuations reuse the listing made for
// the first call, found by its verifier.
type listingKey struct {
	path     string
	verifier uint64
}

type listing struct {
	entries []fs.FileInfo
	at      time.Time
}

const (
	listingTTL = 30 * time.Second
	maxListing = 64
)

func (h *handler) VerifierFor(path string, contents []fs.FileInfo) uint64 {
	sum := sha256.New()
	sum.Write([]byte(path))
	var b [16]byte
	for _, c := range contents {
		sum.Write([]byte(c.Name()))
		binary.BigEndian.PutUint64(b[:8], uint64(c.Size()))
		binary.BigEndian.PutUint64(b[8:], uint64(c.ModTime().UnixNano()))
		sum.Write(b[:])
	}
	v := binary.BigEndian.Uint64(sum.Sum(nil)[:8])
	if v == 0 {
		v = 1
	}
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.listings == nil {
		h.listings = map[listingKey]listing{}
	}
	for k, l := range h.listings {
		if now.Sub(l.at) > listingTTL {
			delete(h.listings, k)
		}
	}
	if len(h.listings) >= maxListing {
		var oldest listingKey
		var at time.Time
		for k, l := range h.listings {
			if at.IsZero() || l.at.Before(at) {
				oldest, at = k, l.at
			}
		}
		delete(h.listings, oldest)
	}
	h.listings[listingKey{path, v}] = listing{entries: contents, at: now}
	return v
}

func (h *handler) DataForVerifier(path string, verifier uint64) []fs.FileInfo {
	h.mu.Lock()
	defer h.mu.Unlock()
	l, ok := h.listings[listingKey{path, verifier}]
	if !ok || time.Since(l.at) > listingTTL {
		return nil
	}
	return l.entries
}
