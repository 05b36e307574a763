package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/internal/control"
	"github.com/urfave/cli/v3"
)

func mountCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "mount",
		Usage:     "mount the household share at DIR",
		ArgsUsage: "DIR",
		Description: "Mounts the household share at DIR, which must be an empty directory.\n" +
			"--mode overlay (Linux, the default there) mounts the daemon's read-only\n" +
			"all-files NFS view at DIR and stacks one overlayfs per arena on DIR/ARENA:\n" +
			"the view below, the arena's real directory above, so real files are served\n" +
			"by the kernel at local speed and an edited unreal file becomes real.\n" +
			"--mode nfs (the default elsewhere) mounts the merged read-write NFS view.\n" +
			"Mounting needs root: without it, prints the exact commands and exits 1.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "mode", Value: defaultMountMode(), Usage: "`MODE`: overlay (Linux) or nfs"},
			&cli.BoolFlag{Name: "dry-run", Usage: "print the mount command instead of running it"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.Args().Len() != 1 {
				return usagef("mount: want one DIR")
			}
			mode := cmd.String("mode")
			switch {
			case mode == "overlay" && runtime.GOOS != "linux":
				return &realize.Error{Op: "mount", Kind: realize.Unsupported, Err: fmt.Errorf("--mode overlay needs Linux (overlayfs); use --mode nfs")}
			case mode != "overlay" && mode != "nfs":
				return usagef("mount: --mode is overlay or nfs, not %q", mode)
			}
			dir, err := filepath.Abs(cmd.Args().First())
			if err != nil {
				return err
			}
			cfg, err := loadConfig(cmd, e)
			if err != nil {
				return err
			}
			addr, err := daemonNFS(ctx, cfg.Data)
			if err != nil {
				return err
			}
			if err := checkMountDir(dir); err != nil {
				return err
			}
			p := newPrinter(cmd, e)
			if mode == "overlay" {
				cmds, err := overlayMountCmds(addr, dir, cfg.Data, cfg.Arenas)
				if err != nil {
					return err
				}
				return runMounts(ctx, e, p, cmd.Bool("dry-run"), cmds, "mount", dir)
			}
			argv, err := mountArgv(addr, dir)
			if err != nil {
				return err
			}
			return runMounts(ctx, e, p, cmd.Bool("dry-run"), [][]string{argv}, "mount", dir)
		},
	}
}

func umountCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "umount",
		Usage:     "unmount the share from DIR",
		ArgsUsage: "DIR",
		Flags:     []cli.Flag{&cli.BoolFlag{Name: "dry-run", Usage: "print the umount command instead of running it"}},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.Args().Len() != 1 {
				return usagef("umount: want one DIR")
			}
			dir, err := filepath.Abs(cmd.Args().First())
			if err != nil {
				return err
			}
			if !isMountPoint(dir) {
				return &realize.Error{Op: "umount", Kind: realize.Invalid, Path: dir, Err: errors.New("nothing is mounted there")}
			}
			// The overlays stacked on DIR/ARENA first (deepest first), then
			// DIR itself.
			var cmds [][]string
			for _, m := range mountsBelow(dir) {
				cmds = append(cmds, []string{"umount", m})
			}
			cmds = append(cmds, []string{"umount", dir})
			return runMounts(ctx, e, newPrinter(cmd, e), cmd.Bool("dry-run"), cmds, "umount", dir)
		},
	}
}

// daemonNFS asks the running daemon where its NFS server listens.
func daemonNFS(ctx context.Context, data string) (string, error) {
	c := control.NewClient(control.SocketPath(data))
	defer c.Close()
	rep, err := c.Status(ctx)
	if err != nil {
		return "", err
	}
	if rep.NFS == "" {
		why := "the config has no nfs address"
		if rep.NFSError != "" {
			why = rep.NFSError
		}
		return "", &realize.Error{Op: "mount", Kind: realize.Unavailable, Err: errors.New("the daemon serves no NFS: " + why)}
	}
	return rep.NFS, nil
}

// checkMountDir refuses a missing, non-empty or already mounted DIR.
func checkMountDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		return &realize.Error{Op: "mount", Kind: realize.Invalid, Path: dir, Err: errors.New("not a directory (create an empty one first)")}
	}
	if isMountPoint(dir) {
		return &realize.Error{Op: "mount", Kind: realize.Exist, Path: dir, Err: errors.New("something is already mounted there")}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return &realize.Error{Op: "mount", Kind: realize.Permission, Path: dir, Err: err}
	}
	if len(ents) > 0 {
		return &realize.Error{Op: "mount", Kind: realize.Invalid, Path: dir, Err: errors.New("the directory is not empty; mounting would hide its files")}
	}
	return nil
}

// mountArgv is the command that mounts the export at addr on dir. go-nfs
// serves MOUNT and NFS on one port and has no portmapper or lock manager.
func mountArgv(addr, dir string) ([]string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	src := host + ":/"
	switch runtime.GOOS {
	case "darwin":
		opts := "vers=3,tcp,port=" + port + ",mountport=" + port + ",nolocks,locallocks,soft,intr,actimeo=1"
		return []string{"mount_nfs", "-o", opts, src, dir}, nil
	case "linux":
		opts := "vers=3,proto=tcp,port=" + port + ",mountport=" + port + ",mountproto=tcp,nolock,soft,timeo=100,retrans=2,actimeo=1"
		return []string{"mount", "-t", "nfs", "-o", opts, src, dir}, nil
	}
	return nil, &realize.Error{Op: "mount", Kind: realize.Unsupported, Err: fmt.Errorf("mounting on %s is not supported", runtime.GOOS)}
}

// runCommand runs argv and returns its combined output (env.runPriv).
func runCommand(ctx context.Context, argv []string) ([]byte, error) {
	return exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
}

func shellQuote(argv []string) string {
	var b strings.Builder
	for i, a := range argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		if strings.ContainsAny(a, " \t'\"$\\") {
			b.WriteString("'" + strings.ReplaceAll(a, "'", `'\''`) + "'")
		} else {
			b.WriteString(a)
		}
	}
	return b.String()
}
