package real

import (
	"strings"
	"testing"
)

func TestParseOverlayMounts(t *testing.T) {
	table := strings.Join([]string{
		`22 1 0:21 / /proc rw,nosuid shared:12 - proc proc rw`,
		`40 30 0:35 / /srv/m rw,relatime shared:20 - nfs 127.0.0.1:/.all ro,vers=3,port=7742`,
		`41 40 0:36 / /srv/m/home rw,relatime shared:21 - overlay realize:home rw,lowerdir=/srv/m/home,upperdir=/home/u/Realize/home,workdir=/home/u/.w,redirect_dir=on`,
		`42 40 0:37 / /srv/m/with\040space rw - overlay overlay rw,lowerdir=/l,upperdir=/up\040dir,workdir=/w`,
		`43 40 0:38 / /srv/other rw - overlay overlay rw,lowerdir=/a:/b`, // no upper layer
		`garbage`,
	}, "\n")
	got := parseOverlayMounts(strings.NewReader(table))
	want := []overlayMount{
		{target: "/srv/m/home", upper: "/home/u/Realize/home"},
		{target: "/srv/m/with space", upper: "/up dir"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("mount %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	if s := unescapeMountinfo(`a\134b\0`); s != `a\b\0` {
		t.Errorf("unescape: %q", s)
	}
}
