package realize_test

import (
	"testing"

	"github.com/realizefs/realize"
)

func TestParsePath(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"", true}, {"a", true}, {"a/b c/d.txt", true}, {"new\nline", true}, {"日本/語", true},
		{"/abs", false}, {"a/../b", false}, {"..", false}, {".", false}, {"a/./b", false},
		{"a//b", false}, {"a/", false}, {"a\x00b", false}, {"bad\xff", false},
		{string(make([]byte, realize.MaxPathLen+1)), false},
	} {
		_, err := realize.ParsePath(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParsePath(%q) err = %v, want ok=%v", tc.in, err, tc.ok)
		}
		if err != nil && realize.KindOf(err) != realize.Invalid {
			t.Errorf("ParsePath(%q) kind = %v", tc.in, realize.KindOf(err))
		}
	}
}

func TestPathHelpers(t *testing.T) {
	p := realize.Path("a/b/c")
	if p.Dir() != "a/b" || p.Base() != "c" || realize.Path("x").Dir() != "" {
		t.Error("Dir/Base")
	}
	if !p.HasPrefix("a/b") || !p.HasPrefix("") || p.HasPrefix("a/bc") || realize.Path("a/bc").HasPrefix("a/b") {
		t.Error("HasPrefix")
	}
	if realize.Path("").Join("x").Join("y") != "x/y" {
		t.Error("Join")
	}
	if got := realize.Path("a\nb").Quote(); got != `"a\nb"` {
		t.Errorf("Quote = %s", got)
	}
}

func TestParseArenaName(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{{"photos", true}, {"a.b_c-d", true}, {"9lives", true}, {"", false}, {"Photos", false}, {"-x", false}, {"a/b", false}, {"a b", false}} {
		if _, err := realize.ParseArenaName(tc.in); (err == nil) != tc.ok {
			t.Errorf("ParseArenaName(%q) err = %v", tc.in, err)
		}
	}
}

func TestVersionVectorCompare(t *testing.T) {
	a, b, c := realize.PeerID{1}, realize.PeerID{2}, realize.PeerID{3}
	vv := func(kv ...any) realize.VersionVector {
		v := realize.VersionVector{}
		for i := 0; i < len(kv); i += 2 {
			v[kv[i].(realize.PeerID)] = uint64(kv[i+1].(int))
		}
		return v
	}
	for _, tc := range []struct {
		x, y realize.VersionVector
		want realize.Order
	}{
		{nil, nil, realize.Equal},
		{vv(a, 1), vv(a, 1), realize.Equal},
		{nil, vv(a, 1), realize.Before},
		{vv(a, 1), vv(a, 2), realize.Before},
		{vv(a, 2, b, 1), vv(a, 2), realize.After},
		{vv(a, 2), vv(b, 1), realize.Concurrent},
		{vv(a, 2, b, 1), vv(a, 1, b, 2), realize.Concurrent},
		{vv(a, 1, c, 0), vv(a, 1), realize.Equal},
	} {
		if got := tc.x.Compare(tc.y); got != tc.want {
			t.Errorf("%v vs %v = %v, want %v", tc.x, tc.y, got, tc.want)
		}
	}
	m := vv(a, 2, b, 1).Merge(vv(a, 1, c, 5))
	if m.Compare(vv(a, 2, b, 1, c, 5)) != realize.Equal {
		t.Errorf("merge = %v", m)
	}
	if w := vv(a, 1).With(b, 7); w[b] != 7 || w[a] != 1 {
		t.Errorf("with = %v", w)
	}
}

func TestHashAndPeerIDText(t *testing.T) {
	h := realize.Hash{0xab}
	back, err := realize.ParseHash(h.String())
	if err != nil || back != h {
		t.Fatal(err)
	}
	if _, err := realize.ParsePeerID("zz"); realize.KindOf(err) != realize.Invalid {
		t.Fatal(err)
	}
}
