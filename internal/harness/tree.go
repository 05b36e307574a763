package harness

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/real"
	"github.com/zeebo/blake3"
	bolt "go.etcd.io/bbolt"
)

// Tree is what a peer's real directory holds: path -> description
// ("file <hash> x", "dir", "symlink -> target"). The daemon's own
// reserved names are left out.
type Tree map[string]string

// TreeOf reads a peer's real directory.
func TreeOf(p *Peer) (Tree, error) {
	t := Tree{}
	err := filepath.WalkDir(p.Root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == p.Root {
			return err
		}
		rel, _ := filepath.Rel(p.Root, path)
		if strings.HasPrefix(d.Name(), real.ReservedPrefix) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			t[rel] = "dir"
		case info.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(path)
			t[rel] = "symlink -> " + target
		default:
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			desc := "file " + realize.Hash(blake3.Sum256(b)).Short()
			if info.Mode()&0o100 != 0 {
				desc += " x"
			}
			t[rel] = desc
		}
		return nil
	})
	return t, err
}

// Diff describes how two trees differ ("" when they are the same).
func Diff(a, b Tree) string {
	var out []string
	for k, v := range a {
		if w, ok := b[k]; !ok {
			out = append(out, fmt.Sprintf("only in first: %s (%s)", k, v))
		} else if v != w {
			out = append(out, fmt.Sprintf("%s: %s vs %s", k, v, w))
		}
	}
	for k, v := range b {
		if _, ok := a[k]; !ok {
			out = append(out, fmt.Sprintf("only in second: %s (%s)", k, v))
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// Converged checks that every peer holds the same tree.
func (h *Household) Converged() error {
	first, err := TreeOf(h.Peers[0])
	if err != nil {
		return err
	}
	for _, p := range h.Peers[1:] {
		t, err := TreeOf(p)
		if err != nil {
			return err
		}
		if d := Diff(first, t); d != "" {
			return fmt.Errorf("peer 0 and peer %d differ:\n%s", p.Index, d)
		}
	}
	return nil
}

// Conflicts lists a peer's conflict records as "path blobshort".
func Conflicts(p *Peer) ([]string, error) {
	var out []string
	err := p.DB.View(func(tx *bolt.Tx) error {
		ix, err := real.OpenIndex(tx, Arena)
		if err != nil {
			return err
		}
		cs, err := ix.Conflicts("")
		for _, c := range cs {
			out = append(out, string(c.Path)+" "+c.Meta.Blob.Short())
		}
		return err
	})
	sort.Strings(out)
	return out, err
}

func hashShort(s string) string { return realize.Hash(blake3.Sum256([]byte(s))).Short() }
