// Package libnfstest runs Debian's libnfs-utils (nfs-ls, nfs-cp) against an
// NFS server on loopback, for tests: a second NFS client, independent of
// go-nfs-client, that speaks MOUNT and NFS on the one port the server has.
package libnfstest

import (
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Tool returns the path of a libnfs-utils binary, or skips the test when
// it is not installed (CI installs it).
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not found: install Debian's libnfs-utils (apt-get install -y libnfs-utils) to run the libnfs tests", name)
	}
	return p
}

// URL is the libnfs URL of path on the server at addr (MOUNT and NFS on
// the same port, no portmapper, no automatic descent into other exports).
func URL(addr, path string) string {
	_, port, _ := net.SplitHostPort(addr)
	return "nfs://127.0.0.1" + path + "?nfsport=" + port + "&mountport=" + port + "&auto-traverse-mounts=0"
}

// Run runs a tool (bounded to a minute) and returns its combined output;
// a failure fails the test.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}
