package consensus

import (
	"testing"

	"github.com/realizefs/realize"
)

func TestFindVersion(t *testing.T) {
	a := realize.Alternative{Origin: realize.PeerID{0xaa, 1, 2, 3}, Meta: realize.Meta{Kind: realize.KindFile, Blob: realize.Hash{0x12, 0x34, 0x56}}}
	b := realize.Alternative{Origin: realize.PeerID{0xbb}, Meta: realize.Meta{Kind: realize.KindFile, Blob: realize.Hash{0x12, 0x34, 0x99}}}
	l := realize.Alternative{Origin: realize.PeerID{0xbb}, Meta: realize.Meta{Kind: realize.KindSymlink, Target: "x"}}
	versions := []realize.Alternative{a, b, l}
	tests := []struct {
		name string
		want *realize.Alternative
		kind realize.ErrKind
	}{
		{"aa010203-123456000000", &a, 0},
		{"aa010203-123456000000.txt", &a, 0}, // as conflicts/ shows it
		{"bb000000-123499000000", &b, 0},
		{"bb000000-symlink", &l, 0},
		{"1234", nil, realize.Invalid}, // both hashes start so
		{"12345", &a, 0},
		{"12349", &b, 0},
		{"123499ABCD", nil, realize.NotExist},
		{"1235", nil, realize.NotExist},
		{"123", nil, realize.NotExist}, // too short to be a hash prefix
		{"cc000000-123456000000", nil, realize.NotExist},
		{"aa010203-123456000000.md", nil, realize.NotExist},
		{"", nil, realize.NotExist},
	}
	for _, tc := range tests {
		got, err := FindVersion("notes/a.txt", versions, tc.name)
		if tc.want != nil {
			if err != nil || got.Origin != tc.want.Origin || got.Meta != tc.want.Meta {
				t.Errorf("%q: %+v %v, want %+v", tc.name, got, err, *tc.want)
			}
			continue
		}
		if k := realize.KindOf(err); k != tc.kind {
			t.Errorf("%q: %v (kind %v), want kind %v", tc.name, err, k, tc.kind)
		}
	}
}

func TestCopyPath(t *testing.T) {
	blob := realize.Hash{0xab, 0xcd, 0xef, 1, 2, 3}
	tests := []struct{ path, who, want string }{
		{"notes/a.txt", "bravo", "notes/a (conflict bravo abcdef010203).txt"},
		{"README", "1a2b3c4d", "README (conflict 1a2b3c4d abcdef010203)"},
		{".profile", "bravo", ".profile (conflict bravo abcdef010203)"},
		{"x/archive.tar.gz", "c", "x/archive.tar (conflict c abcdef010203).gz"},
	}
	for _, tc := range tests {
		got, err := CopyPath(realize.Path(tc.path), tc.who, blob)
		if err != nil || string(got) != tc.want {
			t.Errorf("CopyPath(%q, %q) = %q %v, want %q", tc.path, tc.who, got, err, tc.want)
		}
	}
	if _, err := CopyPath("a.txt", "bad/name", blob); realize.KindOf(err) != realize.Invalid {
		t.Errorf("a peer name with a slash: %v", err)
	}
}
