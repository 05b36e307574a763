package config

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/realizefs/realize"
)

const key3 = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

func mustKey(t *testing.T, s string) realize.PeerID {
	t.Helper()
	k, err := realize.ParsePeerID(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// A hand-written config: comments before, between, inside and after the
// peer tables, an arena in between and odd spacing, all of which must
// survive edits byte for byte.
const handDoc = head + `# the NAS, in the cupboard
[[peer]]   # first
name = "nas"     # short name
# its key:
key = "` + key1 + `"
address = "nas.lan:7741"
# a comment after the nas table

[[arena]]
name = "docs"
dir = "docs"
peers = [
  "phone",  # only the phone
]

[[peer]]
name='phone'
key = "` + key2 + `"
# trailing comment at the end of the file
`

func TestRemovePeerCutsExactlyItsTable(t *testing.T) {
	unshared := strings.Replace(handDoc, `"phone",  # only the phone`, "", 1)
	tests := []struct {
		name, doc, remove, want string
	}{
		{"first table, comments around kept", handDoc, "nas", strings.Replace(handDoc, `[[peer]]   # first
name = "nas"     # short name
# its key:
key = "`+key1+`"
address = "nas.lan:7741"
`, "", 1)},
		{"last table, trailing comment kept", unshared, "phone", strings.Replace(unshared, `[[peer]]
name='phone'
key = "`+key2+`"
`, "", 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, write := setup(t)
			path := write(tt.doc)
			c, err := RemovePeer(path, tt.remove)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(path)
			if string(got) != tt.want {
				t.Errorf("file after removing %s:\n%s\nwant:\n%s", tt.remove, got, tt.want)
			}
			if _, ok := c.Peer(tt.remove); ok || len(c.Peers) != 1 {
				t.Errorf("returned config still has %s: %+v", tt.remove, c.Peers)
			}
		})
	}
}

func TestAddThenRemoveGivesBackTheFile(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		peer Peer
	}{
		{"hand-written", handDoc, Peer{Name: "laptop2", Key: mustKey(t, key3), Address: "[::1]:7741"}},
		{"deaf", handDoc, Peer{Name: "vps", Key: mustKey(t, key3)}},
		{"crlf", strings.ReplaceAll(head, "\n", "\r\n"), Peer{Name: "nas", Key: mustKey(t, key1), Address: "nas:1"}},
		{"template", mustRender(t), Peer{Name: "nas", Key: mustKey(t, key1), Address: "nas.lan:7741"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, write := setup(t)
			path := write(tt.doc)
			c, err := AddPeer(path, tt.peer)
			if err != nil {
				t.Fatal(err)
			}
			if got, ok := c.Peer(tt.peer.Name); !ok || *got != tt.peer {
				t.Errorf("added peer loads as %+v, want %+v", got, tt.peer)
			}
			added, _ := os.ReadFile(path)
			if !strings.HasPrefix(string(added), tt.doc) || !strings.Contains(string(added), "# Added by `realize peer add`.") {
				t.Errorf("add changed the existing text or wrote no comment:\n%s", added)
			}
			if strings.Contains(tt.doc, "\r\n") && strings.Count(string(added), "\n") != strings.Count(string(added), "\r\n") {
				t.Errorf("mixed line endings:\n%q", added)
			}
			if _, err := RemovePeer(path, tt.peer.Name); err != nil {
				t.Fatal(err)
			}
			if back, _ := os.ReadFile(path); string(back) != tt.doc {
				t.Errorf("add then remove:\n%q\nwant:\n%q", back, tt.doc)
			}
		})
	}
}

func mustRender(t *testing.T) string {
	t.Helper()
	doc, err := Render(Template{Name: "laptop", Data: "data", Listen: DefaultListen, NFS: DefaultNFS,
		Arenas: []TemplateArena{{Name: "docs", Dir: "docs"}}})
	if err != nil {
		t.Fatal(err)
	}
	return string(doc)
}

func TestEditRefusals(t *testing.T) {
	tests := []struct {
		name string
		edit func(path string) error
		kind realize.ErrKind
		want string
	}{
		{"own name", add(Peer{Name: "laptop", Key: mustKey(t, key3)}), realize.Invalid, "this peer's own name"},
		{"duplicate name", add(Peer{Name: "nas", Key: mustKey(t, key3)}), realize.Exist, `already called "nas"`},
		{"duplicate key", add(Peer{Name: "nas2", Key: mustKey(t, key2)}), realize.Exist, `peer "phone" already has key fedcba98`},
		{"empty name", add(Peer{Key: mustKey(t, key3)}), realize.Invalid, "name is empty"},
		{"name with space", add(Peer{Name: "my nas", Key: mustKey(t, key3)}), realize.Invalid, "without spaces"},
		{"no port", add(Peer{Name: "x", Key: mustKey(t, key3), Address: "nas.lan"}), realize.Invalid, "not HOST:PORT"},
		{"port 0", add(Peer{Name: "x", Key: mustKey(t, key3), Address: "nas.lan:0"}), realize.Invalid, "from 1 to 65535"},
		{"no host", add(Peer{Name: "x", Key: mustKey(t, key3), Address: ":7741"}), realize.Invalid, "not HOST:PORT"},
		{"unknown peer", remove("tablet"), realize.NotExist, `no peer is called "tablet"`},
		{"named by an arena", remove("phone"), realize.Invalid, `peers list of arena docs (`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, write := setup(t)
			path := write(handDoc)
			err := tt.edit(path)
			if realize.KindOf(err) != tt.kind || err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v (kind %v), want kind %v mentioning %q", err, realize.KindOf(err), tt.kind, tt.want)
			}
			if got, _ := os.ReadFile(path); string(got) != handDoc {
				t.Errorf("a refused edit changed the file:\n%s", got)
			}
		})
	}
}

func add(p Peer) func(string) error {
	return func(path string) error { _, err := AddPeer(path, p); return err }
}

func remove(name string) func(string) error {
	return func(path string) error { _, err := RemovePeer(path, name); return err }
}

func TestEditRefusesABrokenFile(t *testing.T) {
	_, write := setup(t)
	doc := head + "[scan]\nrescann = \"1m\"\n"
	path := write(doc)
	_, err := AddPeer(path, Peer{Name: "nas", Key: mustKey(t, key1)})
	if err == nil || !strings.Contains(err.Error(), "config.toml:4: scan.rescann: unknown key") {
		t.Fatalf("got %v", err)
	}
	// And an edit that would break the file (a peer list written inline
	// cannot be extended by a [[peer]] table) leaves it alone.
	doc = head + "peer = [{name = \"nas\", key = \"" + key1 + "\"}]\n"
	path = write(doc)
	_, err = AddPeer(path, Peer{Name: "phone", Key: mustKey(t, key2)})
	if err == nil || !strings.Contains(err.Error(), "would not load") {
		t.Fatalf("got %v", err)
	}
	if got, _ := os.ReadFile(path); string(got) != doc {
		t.Errorf("file changed:\n%s", got)
	}
	if _, err := RemovePeer(path, "nas"); err == nil || !strings.Contains(err.Error(), "not written as a [[peer]] table") {
		t.Errorf("removing an inline peer: %v", err)
	}
}

func TestEditKeepsModeAndSymlink(t *testing.T) {
	dir, write := setup(t)
	real := write(head)
	if err := os.Chmod(real, 0o640); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.toml")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if _, err := AddPeer(link, Peer{Name: "nas", Key: mustKey(t, key1)}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link was replaced: %v %v", fi.Mode(), err)
	}
	fi, err := os.Stat(real)
	if err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v (%v), want 0640", fi.Mode(), err)
	}
	if c, err := Load(real); err != nil || len(c.Peers) != 1 {
		t.Errorf("target not edited: %+v %v", c, err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".*.tmp"))
	if len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestConcurrentAddsAreAllKept(t *testing.T) {
	_, write := setup(t)
	path := write(head)
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			var k realize.PeerID
			k[0] = byte(i + 1)
			_, err := AddPeer(path, Peer{Name: "p" + string(rune('a'+i)), Key: k})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	c, err := Load(path)
	if err != nil || len(c.Peers) != n {
		t.Fatalf("%d peers after %d concurrent adds (%v)", len(c.Peers), n, err)
	}
}
