package control

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/realizefs/realize"
)

// maxSocketPath is the longest socket path that works everywhere: sun_path
// is 104 bytes on macOS and the BSDs (108 on Linux), including the NUL.
const maxSocketPath = 103

// SocketPath returns the control socket of the peer whose data directory is
// dataDir: <data>/run/realize.sock, or, when that is too long for a Unix
// socket address, <tmp>/realize-<uid>/<hash of dataDir>.sock. The daemon
// and the CLI both call it, so they agree without writing the path anywhere.
func SocketPath(dataDir string) string {
	p := filepath.Join(dataDir, "run", "realize.sock")
	if len(p) <= maxSocketPath {
		return p
	}
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		abs = dataDir
	}
	sum := sha256.Sum256([]byte(abs))
	return filepath.Join(os.TempDir(), "realize-"+strconv.Itoa(os.Getuid()), hex.EncodeToString(sum[:8])+".sock")
}

// Listen listens on the control socket at path: its directory is created
// 0700 (and refused if someone else owns it or others can enter it: the
// fallback lives in a shared temporary directory), the socket is made 0600,
// and a stale socket left by a killed daemon is removed first. The caller
// must hold the data directory's lock (the database) before calling it, or
// it could remove the socket of a live daemon.
func Listen(path string) (net.Listener, error) {
	const op = "listen on control socket"
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, &realize.Error{Op: op, Kind: realize.IO, Path: dir, Err: err}
	}
	if err := checkPrivateDir(dir); err != nil {
		return nil, &realize.Error{Op: op, Kind: realize.Permission, Path: dir, Err: err}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, &realize.Error{Op: op, Kind: realize.IO, Path: path, Err: fmt.Errorf("removing stale socket: %w", err)}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, &realize.Error{Op: op, Kind: realize.IO, Path: path, Err: err}
	}
	// Only the owner may talk to the daemon. The directory is 0700 already;
	// the socket's own mode is a second fence.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, &realize.Error{Op: op, Kind: realize.IO, Path: path, Err: err}
	}
	return ln, nil
}

// checkPrivateDir makes sure dir is ours and closed to others, tightening
// the mode of a directory we own.
func checkPrivateDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return errors.New("not a directory")
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		return fmt.Errorf("owned by uid %d, not by this user (%d)", st.Uid, os.Getuid())
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return os.Chmod(dir, 0o700)
	}
	return nil
}
