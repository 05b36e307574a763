package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// benchMount: the throughput of a real file through `realize mount`
// against the same file system used directly, under the same kernel: a
// user-mode Linux guest (test/kernel), one daemon in it, its real
// directory on an ext4 disk, its share mounted in overlay mode (Linux's
// default: the kernel serves real files from the real directory) and in
// nfs mode (the macOS path: every byte through the daemon). The guest
// script is test/kernel/scripts/bench-mount.sh; it does every run in one
// boot, each run measuring every route three times, interleaved, and
// prints one line per measurement; a figure is the median of all of a
// route's. Timings under UML on a shared machine vary much from one
// measurement to the next, hence the interleaving. Where UML cannot run,
// the stage says so and is skipped.
func benchMount(ctx context.Context, o Options) ([]Row, error) {
	if o.MountBytes <= 0 {
		return nil, nil
	}
	root, err := moduleRoot(ctx)
	if err != nil {
		return nil, err
	}
	runner := filepath.Join(root, "test", "kernel", "run-uml.sh")
	if out, err := exec.CommandContext(ctx, "bash", runner, "--check").CombinedOutput(); err != nil {
		fmt.Fprintf(o.Out, "mount: skipped, user-mode Linux cannot run here: %s\n", strings.TrimSpace(string(out)))
		return nil, nil
	}
	dir, err := freshDir(o, "mount")
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "bin")
	for name, pkg := range map[string]string{"realize": "./cmd/realize", "guestio": "./internal/bench/cmd/guestio"} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(bin, name), pkg)
		cmd.Dir, cmd.Env = root, append(os.Environ(), "CGO_ENABLED=0") // the guest has no libc
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("building %s for the guest: %v\n%s", name, err, out)
		}
	}
	os.Chmod(bin, 0o755)
	got, fs, err := runMountGuest(ctx, o, runner, dir, bin)
	if err != nil {
		return nil, err
	}
	return mountRows(o, got, fs)
}

// runMountGuest boots the guest and returns its measurements: MB/s by
// "route op" ("overlay read", ...), one per run, and the guest's file
// system (ext4 on its disk, or tmpfs when the runner could not make one).
func runMountGuest(ctx context.Context, o Options, runner, dir, bin string) (map[string][]float64, string, error) {
	mib := int(max(o.MountBytes>>20, 1))
	limit := 120 + 300*o.Runs*max(mib/256, 1) // seconds: UML on a busy machine
	cmd := exec.CommandContext(ctx, "bash", runner, "--work", filepath.Join(dir, "uml"), "--timeout", strconv.Itoa(limit),
		"--disk", strconv.Itoa(4*mib+512), // the file read, the three written, and room
		"--env", "BIN_DIR="+bin, "--env", "SIZE_MB="+strconv.Itoa(mib), "--env", "RUNS="+strconv.Itoa(o.Runs),
		filepath.Join(filepath.Dir(runner), "scripts", "bench-mount.sh"))
	cmd.Env = append(os.Environ(), "KTEST_MEM=768M")
	// The runner and what it starts in a group of their own, stopped as
	// one (the runner kills UML by PID itself; this catches the rest).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if err != nil {
		return nil, "", fmt.Errorf("the guest failed (%v):\n%s", err, tail(out, 60))
	}
	got, fs := map[string][]float64{}, "?"
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		f := strings.Fields(strings.TrimPrefix(sc.Text(), "BENCH: "))
		switch {
		case !strings.HasPrefix(sc.Text(), "BENCH: "):
			continue
		case len(f) == 2 && f[0] == "fs":
			fs = f[1]
			continue
		case len(f) != 3:
			continue
		}
		v, err := strconv.ParseFloat(f[2], 64)
		if err != nil {
			return nil, "", fmt.Errorf("guest line %q: %v", sc.Text(), err)
		}
		got[f[0]+" "+f[1]] = append(got[f[0]+" "+f[1]], v)
	}
	if len(got) == 0 {
		return nil, "", fmt.Errorf("the guest measured nothing:\n%s", tail(out, 60))
	}
	return got, fs, nil
}

func mountRows(o Options, got map[string][]float64, fs string) ([]Row, error) {
	size := human(o.MountBytes)
	var rows []Row
	for _, op := range []string{"read", "write"} {
		local := median(got["local "+op])
		if local == 0 {
			return nil, errors.New("no local " + op + " measured")
		}
		for _, route := range []string{"overlay", "nfs"} {
			v := median(got[route+" "+op])
			r := Row{Name: fmt.Sprintf("mount --mode %s: %s a real %s file (UML)", route, op, size), Value: v, Unit: "MB/s",
				Baseline: "same file system direct", Ratio: v / local}
			if route == "overlay" {
				r.Goal, r.Met = ">= 0.9x", met(v/local >= 0.9)
			}
			rows = append(rows, r)
		}
		rows = append(rows, Row{Name: fmt.Sprintf("direct %s of a %s file, %s in UML (baseline)", op, size, fs), Value: local, Unit: "MB/s"})
	}
	return rows, nil
}

// moduleRoot is the directory of the module being benchmarked.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	mod := strings.TrimSpace(string(out))
	if err != nil || mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not in the realize module (go env GOMOD: %q, %v)", mod, err)
	}
	return filepath.Dir(mod), nil
}

// tail returns the last n lines of out.
func tail(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}
