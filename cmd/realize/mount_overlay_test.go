package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/realizefs/realize/internal/config"
)

func TestOverlayMountCmds(t *testing.T) {
	base := t.TempDir()
	data, home := filepath.Join(base, "data"), filepath.Join(base, "home")
	for _, d := range []string{data, home} {
		if err := mkdirAll(d); err != nil {
			t.Fatal(err)
		}
	}
	cmds, err := overlayMountCmds("127.0.0.1:2049", "/mnt/r", data, []config.Arena{{Name: "home", Dir: home}})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, c := range cmds {
		lines = append(lines, shellQuote(c))
	}
	work := filepath.Join(data, "overlay-work", "home")
	want := []string{
		"mkdir -p " + work,
		"mount -t nfs -o ro,vers=3,proto=tcp,port=2049,mountport=2049,mountproto=tcp,nolock,soft,timeo=100,retrans=2,actimeo=1,lookupcache=none 127.0.0.1:/.all /mnt/r",
		"mount -t overlay -o lowerdir=/mnt/r/home,upperdir=" + home + ",workdir=" + work + ",redirect_dir=on,index=off,metacopy=off realize:home /mnt/r/home",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	// A data directory inside the real directory cannot hold the work
	// directory (overlayfs refuses nested layers): beside it instead.
	inner := filepath.Join(home, ".data")
	_ = mkdirAll(inner)
	w, err := overlayWorkDir(inner, config.Arena{Name: "home", Dir: home})
	if err != nil || w != filepath.Join(base, ".realize-overlay-work-home") {
		t.Fatalf("work dir %q, %v", w, err)
	}
	if _, err := overlayMountCmds("127.0.0.1:2049", "/mnt/a,b", data, []config.Arena{{Name: "home", Dir: home}}); err == nil {
		t.Fatal("a comma in a path must be refused")
	}
}

func mkdirAll(d string) error { return os.MkdirAll(d, 0o755) }
