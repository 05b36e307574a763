package config

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"

	"github.com/realizefs/realize"
)

func (v *validator) peers(raw []filePeer) []Peer {
	var out []Peer
	names := map[string]bool{}
	keys := map[realize.PeerID]string{}
	for i, rp := range raw {
		at := fmt.Sprintf("peer[%d]", i)
		field := elemName("peer", i, rp.Name)
		p := Peer{Name: rp.Name, Address: rp.Address}
		switch {
		case rp.Name == "":
			v.fail(at, field+".name", "required")
		case !validPeerName(rp.Name):
			v.fail(at+".name", field+".name", "%q: peer names are up to 64 characters without spaces", rp.Name)
		case names[rp.Name]:
			v.fail(at+".name", field+".name", "another peer is already called %q", rp.Name)
		}
		names[rp.Name] = true
		if rp.Key == nil {
			v.fail(at, field+".key", "required: the peer's public key, as `realize id` prints it on that peer")
		} else if id, err := realize.ParsePeerID(*rp.Key); err != nil {
			v.fail(at+".key", field+".key", "not a peer key (want the 64 hex digits `realize id` prints)")
		} else if other, dup := keys[id]; dup {
			v.fail(at+".key", field+".key", "same key as peer %q", other)
		} else {
			keys[id] = rp.Name
			p.Key = id
		}
		if rp.Address != "" {
			p.Address = v.address(at+".address", &rp.Address, "")
			v.relabel(at+".address", field+".address")
		}
		out = append(out, p)
	}
	return out
}

// validPeerName is the rule for peer names (checked when loading and by
// AddPeer): short, and one word, since `--peer NAME` and `peers = [...]`
// refer to it.
func validPeerName(name string) bool {
	return len(name) <= 64 && strings.IndexFunc(name, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) < 0
}

// relabel renames the field of the last problem if it was recorded under
// the positional key (address checks share code with top-level keys).
func (v *validator) relabel(key, field string) {
	if n := len(v.errs); n > 0 && v.errs[n-1].Field == key {
		v.errs[n-1].Field = field
	}
}

func (v *validator) arenas(raw []fileArena, c *Config) []Arena {
	var out []Arena
	seen := map[realize.ArenaName]bool{}
	dirs := map[string]string{} // resolved dir -> field, for overlap checks
	for i, ra := range raw {
		at := fmt.Sprintf("arena[%d]", i)
		field := elemName("arena", i, ra.Name)
		a := Arena{Pin: ra.Pin, Peers: ra.Peers}
		if ra.Name == "" {
			v.fail(at, field+".name", "required")
		} else if name, err := realize.ParseArenaName(ra.Name); err != nil {
			v.fail(at+".name", field+".name", "%q: arena names are 1-64 of a-z 0-9 . _ - starting with a letter or digit", ra.Name)
		} else if name == ReservedArena || name == "share" {
			v.fail(at+".name", field+".name", "%q is reserved (the mount shows conflicts/ and share/ at its root)", ra.Name)
		} else if seen[name] {
			v.fail(at+".name", field+".name", "another arena is already called %q", ra.Name)
		} else {
			seen[name] = true
			a.Name = name
		}
		a.Dir = v.arenaDir(at+".dir", field+".dir", ra.Dir, c.Data, dirs)
		a.DeleteGuard = DefaultDeleteGuard
		if ra.DeleteGuard != nil {
			share, err := ParseShare(*ra.DeleteGuard)
			if err != nil {
				v.fail(at+".delete_guard", field+".delete_guard", "%v", err)
			}
			a.DeleteGuard = share
		}
		for j, p := range ra.Peers {
			if _, ok := c.Peer(p); !ok {
				v.fail(fmt.Sprintf("%s.peers[%d]", at, j), field+".peers", "no [[peer]] is called %q", p)
			}
		}
		out = append(out, a)
	}
	return out
}

func (v *validator) arenaDir(key, field, dir, data string, dirs map[string]string) string {
	if dir == "" {
		v.fail(key, field, "required: the arena's real directory")
		return ""
	}
	d := v.abs(dir)
	fi, err := os.Stat(d)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		v.fail(key, field, "directory %q does not exist", d)
		return d
	case err != nil:
		v.fail(key, field, "%v", err)
		return d
	case !fi.IsDir():
		v.fail(key, field, "%q is not a directory", d)
		return d
	}
	r := resolve(d)
	// The data directory may sit inside an arena (the indexer skips it),
	// but an arena inside the data directory would be indexed and then
	// changed by the daemon's own writes.
	if data != "" && within(r, resolve(data)) {
		v.fail(key, field, "%q is inside the data directory %q", d, data)
	}
	for other, otherField := range dirs {
		if within(r, other) || within(other, r) {
			v.fail(key, field, "%q overlaps %s (%q): arenas must not nest", d, strings.TrimSuffix(otherField, ".dir"), other)
		}
	}
	dirs[r] = field
	return d
}

// resolve follows symlinks where the path exists, so that two spellings of
// one directory compare equal.
func resolve(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

// within tells whether p is dir or lies beneath it.
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// ParseShare parses a delete guard: a percentage ("50%", "12.5%") or
// "off" (also "0", "0%"), which is returned as 0.
func ParseShare(s string) (float64, error) {
	t := strings.TrimSpace(s)
	if t == "off" || t == "0" {
		return 0, nil
	}
	num, ok := strings.CutSuffix(t, "%")
	p, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if !ok || err != nil || math.IsNaN(p) || p < 0 || p > 100 {
		return 0, fmt.Errorf("%q: want a share of the arena's files from \"0%%\" to \"100%%\" (e.g. \"50%%\"), or \"off\"", s)
	}
	return p, nil
}
