package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/internal/config"
)

// The overlay mount (Linux; docs/decisions/0012-overlay-mount.md):
//
//	DIR                  the daemon's read-only all-files NFS view (/.all)
//	DIR/ARENA            overlayfs: lowerdir = DIR/ARENA (that view),
//	                     upperdir = the arena's real directory,
//	                     workdir  = <data>/overlay-work/ARENA, or, when the
//	                     data directory is on another file system than the
//	                     real directory, .realize-overlay-work-ARENA beside it
//	DIR/conflicts        kept conflict versions (read-only here)

func defaultMountMode() string {
	if runtime.GOOS == "linux" {
		return "overlay"
	}
	return "nfs"
}

// overlayOptions are the overlayfs options besides the layers:
// redirect_dir=on lets a directory that has unreal files (present only in
// the lower layer) be renamed in place (else rename(2) fails with EXDEV and
// mv copies every byte); index=off and metacopy=off keep every copy-up a
// whole real file, which is what the indexer records (a metacopy-only
// upper file would be indexed as empty); no xino: the lower and upper file
// systems differ and inode numbers are not compared through the mount.
const overlayOptions = "redirect_dir=on,index=off,metacopy=off"

// overlayMountCmds are the commands that mount the share at dir in
// overlay mode, in order.
func overlayMountCmds(addr, dir, data string, arenas []config.Arena) ([][]string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if len(arenas) == 0 {
		return nil, &realize.Error{Op: "mount", Kind: realize.Invalid, Err: errors.New("the config has no arena to mount")}
	}
	// The lower layer: read-only; no lookup is cached (lookupcache=none):
	// overlayfs takes a lower name it finds for good, and a name another
	// peer removed a moment ago, still trusted from the NFS cache, would
	// leave it a dentry answering "stale file handle" for as long as it
	// is cached (docs/decisions/0014-kernel-caches.md).
	nfsOpts := "ro,vers=3,proto=tcp,port=" + port + ",mountport=" + port +
		",mountproto=tcp,nolock,soft,timeo=100,retrans=2,actimeo=1,lookupcache=none"
	cmds := [][]string{{"mount", "-t", "nfs", "-o", nfsOpts, host + ":/.all", dir}}
	var mkdirs, overlays [][]string
	for _, a := range arenas {
		work, err := overlayWorkDir(data, a)
		if err != nil {
			return nil, err
		}
		target := filepath.Join(dir, string(a.Name))
		for _, p := range []string{target, a.Dir, work} {
			if strings.ContainsAny(p, ",:\\\n\t ") {
				return nil, &realize.Error{Op: "mount", Kind: realize.Invalid, Arena: a.Name, Path: p,
					Err: errors.New("overlayfs options cannot hold a path with a comma, colon, backslash or space; use another directory")}
			}
		}
		mkdirs = append(mkdirs, []string{"mkdir", "-p", work})
		opts := "lowerdir=" + target + ",upperdir=" + a.Dir + ",workdir=" + work + "," + overlayOptions
		overlays = append(overlays, []string{"mount", "-t", "overlay", "-o", opts, "realize:" + string(a.Name), target})
	}
	return append(append(mkdirs, cmds...), overlays...), nil
}

// overlayWorkDir is the arena's overlayfs work directory: it must be an
// empty directory on the real directory's file system, not inside it.
func overlayWorkDir(data string, a config.Arena) (string, error) {
	var real, d syscall.Stat_t
	if err := syscall.Stat(a.Dir, &real); err != nil {
		return "", &realize.Error{Op: "mount", Kind: realize.NotExist, Arena: a.Name, Path: a.Dir, Err: err}
	}
	work := filepath.Join(data, "overlay-work", string(a.Name))
	if syscall.Stat(data, &d) == nil && d.Dev == real.Dev && !inside(data, a.Dir) {
		return work, nil
	}
	return filepath.Join(filepath.Dir(a.Dir), ".realize-overlay-work-"+string(a.Name)), nil
}

func inside(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// mountsBelow lists the mount points strictly below dir, deepest first.
func mountsBelow(dir string) []string {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		m := unescapeMount(fields[1])
		if strings.HasPrefix(m, dir+"/") {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// runMounts runs several commands in order (stopping at the first that
// fails), or says exactly what to run when this process cannot.
func runMounts(ctx context.Context, e *env, p *printer, dry bool, cmds [][]string, what, dir string) error {
	lines := make([]string, len(cmds))
	for i, c := range cmds {
		lines[i] = shellQuote(c)
	}
	if dry {
		for _, l := range lines {
			p.Printf("%s\n", l)
		}
		return nil
	}
	if e.geteuid() != 0 {
		// Op names the command: "realize: mount: needs root; run: ...".
		return &realize.Error{Op: what, Kind: realize.Permission,
			Err: fmt.Errorf("needs root; run:\n  sudo %s", strings.Join(lines, "\n  sudo "))}
	}
	for i, c := range cmds {
		out, err := e.runPriv(ctx, c)
		if err != nil {
			return &realize.Error{Op: what, Kind: realize.Other,
				Err: fmt.Errorf("%s failed: %s\ncommand: %s", what, strings.TrimSpace(string(out)), lines[i])}
		}
	}
	p.Printf("%s: %s\n", what, dir)
	return nil
}
