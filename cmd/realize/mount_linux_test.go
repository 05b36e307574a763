package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/realizefs/realize/internal/config"
)

// mountRun runs the CLI in-process as a user with effective uid euid;
// the commands it would run with privileges are recorded, not run.
func mountRun(t *testing.T, euid int, args ...string) (out, errs string, code int, ran [][]string) {
	t.Helper()
	var o, eb bytes.Buffer
	e := testEnv(t, &o, &eb, func(string) string { return "" })
	e.geteuid = func() int { return euid }
	e.runPriv = func(_ context.Context, argv []string) ([]byte, error) {
		ran = append(ran, argv)
		return nil, nil
	}
	code = run(t.Context(), e, append([]string{"realize"}, args...))
	return o.String(), eb.String(), code, ran
}

// TestMountNotRoot: without root, `realize mount` and `realize umount`
// run nothing, print exactly the commands to run with sudo (the same ones
// root runs, in order, and --dry-run prints), exit 1 and leave the
// directory as it was.
func TestMountNotRoot(t *testing.T) {
	_, cfgPath := initPeer(t)
	serveFake(t, cfgPath) // its daemon serves NFS on 127.0.0.1:7742
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	home := cfg.Arenas[0].Dir
	work := filepath.Join(cfg.Data, "overlay-work", "home")
	nfsOpts := "vers=3,proto=tcp,port=7742,mountport=7742,mountproto=tcp,nolock,soft,timeo=100,retrans=2,actimeo=1"
	modes := []struct {
		mode string
		cmds []string
	}{
		{"nfs", []string{"mount -t nfs -o " + nfsOpts + " 127.0.0.1:/ " + dir}},
		{"overlay", []string{
			"mkdir -p " + work,
			"mount -t nfs -o ro," + nfsOpts + ",lookupcache=none 127.0.0.1:/.all " + dir,
			"mount -t overlay -o lowerdir=" + dir + "/home,upperdir=" + home + ",workdir=" + work +
				",redirect_dir=on,index=off,metacopy=off realize:home " + dir + "/home",
		}},
	}
	for _, m := range modes {
		out, errs, code, ran := mountRun(t, 1000, "--config", cfgPath, "mount", "--mode", m.mode, dir)
		want := "realize: mount: needs root; run:\n  sudo " + strings.Join(m.cmds, "\n  sudo ") + "\n"
		if code != 1 || out != "" || errs != want || len(ran) != 0 {
			t.Errorf("%s, not root: exit %d, ran %q, stdout %q, stderr\n%s\nwant\n%s", m.mode, code, ran, out, errs, want)
		}
		if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 || isMountPoint(dir) {
			t.Errorf("%s, not root: %s changed: %d entries, %v, mount point %v", m.mode, dir, len(ents), err, isMountPoint(dir))
		}
		if _, err := os.Stat(work); err == nil {
			t.Errorf("%s, not root: the overlay work directory was made", m.mode)
		}
		// The same commands are what --dry-run prints and root runs.
		out, errs, code, ran = mountRun(t, 1000, "--config", cfgPath, "mount", "--dry-run", "--mode", m.mode, dir)
		if code != 0 || out != strings.Join(m.cmds, "\n")+"\n" || len(ran) != 0 {
			t.Errorf("%s, dry run: exit %d, ran %q, stdout %q, stderr %q", m.mode, code, ran, out, errs)
		}
		out, errs, code, ran = mountRun(t, 0, "--config", cfgPath, "mount", "--mode", m.mode, dir)
		var lines []string
		for _, c := range ran {
			lines = append(lines, shellQuote(c))
		}
		if code != 0 || out != "mount: "+dir+"\n" || strings.Join(lines, "\n") != strings.Join(m.cmds, "\n") {
			t.Errorf("%s, root: exit %d, stdout %q, stderr %q, ran\n%s", m.mode, code, out, errs, strings.Join(lines, "\n"))
		}
	}

	// umount needs something mounted: any mount point of this machine
	// with nothing mounted below it will do (nothing runs).
	mp := leafMount(t)
	if mp == "" {
		t.Skip("no mount point without mounts below it to try umount on")
	}
	out, errs, code, ran := mountRun(t, 1000, "--config", cfgPath, "umount", mp)
	want := "realize: umount: needs root; run:\n  sudo umount " + mp + "\n"
	if code != 1 || out != "" || errs != want || len(ran) != 0 || !isMountPoint(mp) {
		t.Errorf("umount, not root: exit %d, ran %q, stdout %q, stderr\n%s\nwant\n%s", code, ran, out, errs, want)
	}
	out, _, code, ran = mountRun(t, 0, "--config", cfgPath, "umount", mp)
	if code != 0 || out != "umount: "+mp+"\n" || len(ran) != 1 || shellQuote(ran[0]) != "umount "+mp {
		t.Errorf("umount, root: exit %d, stdout %q, ran %q", code, out, ran)
	}
}

// leafMount returns a directory mount point of this machine with no mount
// below it and a name needing no quoting, or "".
func leafMount(t *testing.T) string {
	t.Helper()
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		m := unescapeMount(fields[1])
		fi, err := os.Stat(m)
		if m == "/" || err != nil || !fi.IsDir() || shellQuote([]string{m}) != m || !isMountPoint(m) || len(mountsBelow(m)) > 0 {
			continue
		}
		return m
	}
	return ""
}
