package main

import (
	"bufio"
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/internal/config"
)

// resolveArg turns a path as a person types it into ARENA:PATH, the form
// the daemon takes: ARENA:PATH as is, a path inside an arena's real
// directory, or a path inside a mount of this peer's NFS export (found in
// the system's mount table by the server's port).
func resolveArg(cfg *config.Config, arg string) (string, error) {
	if a, rest, ok := strings.Cut(arg, ":"); ok && !strings.ContainsRune(a, filepath.Separator) {
		if _, found := cfg.Arena(realize.ArenaName(a)); found {
			p, err := realize.ParsePath(strings.Trim(rest, "/"))
			if err != nil {
				return "", err
			}
			return a + ":" + string(p), nil
		}
	}
	abs, err := filepath.Abs(arg)
	if err != nil {
		return "", err
	}
	for _, a := range cfg.Arenas {
		if rel, ok := under(a.Dir, abs); ok {
			return arenaPath(a.Name, rel)
		}
	}
	for _, m := range nfsMounts(cfg) {
		if rel, ok := under(m.dir, abs); ok {
			return mountPath(path2(m.export, rel))
		}
	}
	return "", &realize.Error{Op: "resolve path", Kind: realize.NotExist, Path: arg,
		Err: errors.New("not inside any arena or mount (give a path in an arena's directory or mount, or ARENA:PATH)")}
}

// under returns abs relative to dir, if it is inside it; symlinks in
// either (a temp dir under /tmp -> /private/tmp) are resolved first.
func under(dir, abs string) (string, bool) {
	for _, d := range []string{dir, evalOr(dir)} {
		for _, p := range []string{abs, evalOr(abs)} {
			rel, err := filepath.Rel(d, p)
			if err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(os.PathSeparator)) {
				return filepath.ToSlash(rel), true
			}
		}
	}
	return "", false
}

func evalOr(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

func arenaPath(name realize.ArenaName, rel string) (string, error) {
	if rel == "." {
		rel = ""
	}
	p, err := realize.ParsePath(rel)
	if err != nil {
		return "", err
	}
	return string(name) + ":" + string(p), nil
}

func path2(export, rel string) string {
	if rel == "." {
		rel = ""
	}
	return strings.Trim(export+"/"+rel, "/")
}

// mountPath maps a path of the export ("share/photos/x", ".all/photos/x")
// to ARENA:PATH.
func mountPath(p string) (string, error) {
	p = strings.TrimPrefix(strings.TrimPrefix(p, "share/"), ".all/")
	if p == "share" || p == ".all" || p == "" {
		return "", &realize.Error{Op: "resolve path", Kind: realize.Invalid, Path: p, Err: errors.New("the mount's root holds arenas: name a path inside one")}
	}
	name, rest, _ := strings.Cut(p, "/")
	arena, err := realize.ParseArenaName(name)
	if err != nil {
		return "", err
	}
	return arenaPath(arena, rest)
}

type nfsMount struct {
	dir    string // where it is mounted
	export string // the export path mounted ("", "photos", ...)
}

// nfsMounts lists the mounts of this peer's NFS server (Linux: from
// /proc/self/mounts; elsewhere none are found and paths in mounts must be
// given as ARENA:PATH).
func nfsMounts(cfg *config.Config) []nfsMount {
	if cfg.NFS == "" || runtime.GOOS != "linux" {
		return nil
	}
	_, port, err := net.SplitHostPort(cfg.NFS)
	if err != nil {
		return nil
	}
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []nfsMount
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || !strings.HasPrefix(fields[2], "nfs") {
			continue
		}
		host, export, ok := strings.Cut(fields[0], ":")
		if !ok || (host != "127.0.0.1" && host != "localhost") || !hasOption(fields[3], "port="+port) {
			continue
		}
		out = append(out, nfsMount{dir: unescapeMount(fields[1]), export: strings.Trim(export, "/")})
	}
	return out
}

func hasOption(opts, want string) bool {
	for _, o := range strings.Split(opts, ",") {
		if o == want {
			return true
		}
	}
	return false
}

// unescapeMount undoes the octal escapes of /proc/self/mounts (\040 for a
// space, ...).
func unescapeMount(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, ok := octal(s[i+1 : i+4]); ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func octal(s string) (byte, bool) {
	if len(s) != 3 {
		return 0, false
	}
	v := 0
	for _, c := range s {
		if c < '0' || c > '7' {
			return 0, false
		}
		v = v*8 + int(c-'0')
	}
	return byte(v), v < 256
}
