package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/internal/control"
	"github.com/urfave/cli/v3"
)

func approveCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "approve",
		Usage:     "record deletions the delete guard is holding, so they reach the other peers",
		ArgsUsage: "[ARENA]",
		Description: "When the files deleted on this peer at once (or within a minute) are more than\n" +
			"an arena's delete_guard share of its files (\"50%\" by default), or the arena's\n" +
			"directory is found empty (an unmounted disk?), the deletions are held: not\n" +
			"recorded, not sent to other peers, which keep their copies. `realize status`\n" +
			"shows them. This records them, in ARENA or in every arena that holds some.\n" +
			"Deletions found after status last showed the hold stay held.\n\n" +
			"--reject undoes the deletions instead: directories and symlinks are made again,\n" +
			"deleted files come back as unreal files (listed in the mount, fetched on read;\n" +
			"realize pin brings them to disk) when another peer holds them; the others stay\n" +
			"held and are named (exit 1). After an unmounted disk, do not reject: mount the\n" +
			"disk again, and the hold ends by itself, as it does whenever the files are put\n" +
			"back. Exits 1 if nothing is held.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "reject", Usage: "undo the held deletions: bring the files back from the other peers"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.Args().Len() > 1 {
				return usagef("approve: want at most one ARENA, got %d arguments", cmd.Args().Len())
			}
			cfg, err := loadConfig(cmd, e)
			if err != nil {
				return err
			}
			req := control.ApproveRequest{Reject: cmd.Bool("reject")}
			if a := cmd.Args().First(); a != "" {
				if req.Arena, err = realize.ParseArenaName(a); err != nil {
					return usagef("approve: %q is not an arena name", a)
				}
				if _, ok := cfg.Arena(req.Arena); !ok {
					return usagef("approve: no arena called %q in %s", a, cfg.File)
				}
			}
			c := control.NewClient(control.SocketPath(cfg.Data))
			defer c.Close()
			// No timeout: approving rescans the arena, which takes as long
			// as the arena is large; Ctrl-C stops waiting.
			rep, err := c.Approve(ctx, req)
			if err != nil {
				return err
			}
			p := newPrinter(cmd, e)
			if p.json {
				if err := p.JSON(rep); err != nil {
					return err
				}
			} else {
				printApproved(p, rep, req.Reject)
			}
			return keptError(rep)
		},
	}
}

// keptError fails a rejection that left deletions held.
func keptError(rep *control.ApproveReport) error {
	for _, a := range rep.Approved {
		if len(a.Kept) > 0 {
			k := a.Kept[0]
			return &realize.Error{Op: "reject", Kind: realize.Conflict, Arena: a.Arena,
				Err: fmt.Errorf("%s still held (%s: %s)", count(int64(len(a.Kept)), "deletion"), k.Path.Quote(), k.Reason)}
		}
	}
	return nil
}

// keptShown bounds the paths a rejection lists as still held.
const keptShown = 10

func printApproved(p *printer, rep *control.ApproveReport, reject bool) {
	for _, a := range rep.Approved {
		if reject {
			p.Printf("%s: put back %s, not deleted anywhere; files whose bytes are elsewhere are unreal here\n"+
				"  (read them through the mount, or fetch them with realize pin)\n", a.Arena, count(a.Restored, "path"))
			for i, k := range a.Kept {
				if i == keptShown {
					p.Printf("  … and %d more\n", len(a.Kept)-keptShown)
					break
				}
				p.Printf("  still held: %s: %s\n", k.Path.Quote(), k.Reason)
			}
			continue
		}
		p.Printf("%s: recorded %s (%s, %s); the other peers delete them too\n",
			a.Arena, count(a.Files+a.Dirs, "deletion"), count(a.Files, "file"), count(a.Dirs, "directory"))
		if a.StillHeld > 0 {
			p.Printf("%s: %s found since still held (see realize status; approve again to record them)\n",
				a.Arena, count(a.StillHeld, "deletion"))
		}
	}
}

// printHeld shows an arena's held deletions in status: what, since when,
// why, and how to release or undo them.
func printHeld(p *printer, a *control.ArenaStatus, now time.Time) {
	if a.SettlingDeletes > 0 {
		p.Printf("  deleting %s, in a moment (the delete guard waits for more to judge them together)\n",
			count(a.SettlingDeletes, "path"))
	}
	h := a.Held
	if h == nil {
		return
	}
	p.Printf("  HELD     %s (%s, %s; %.0f%% of the files) since %s (%s ago):\n",
		count(h.Files+h.Dirs, "deletion"), count(h.Files, "file"), count(h.Dirs, "directory"), h.Percent,
		h.Since.Local().Format(time.DateTime), since(now, h.Since))
	p.Printf("           not recorded, not sent to other peers (they keep their copies)\n")
	switch {
	case h.Reason == "empty":
		p.Printf("           because the arena's directory is empty (an unmounted disk?)\n")
	case h.Guard > 0:
		p.Printf("           because that is more than delete_guard (%g%%) of the arena's files\n", h.Guard)
	}
	for i, s := range h.Sample {
		more := ""
		if i == len(h.Sample)-1 && int64(len(h.Sample)) < h.Files+h.Dirs {
			more = "  …"
		}
		p.Printf("           %s%s\n", s.Quote(), more)
	}
	p.Printf("           to delete them everywhere: realize approve %s\n", a.Name)
	p.Printf("           to undo: put the files back (remount a disk) and the hold ends by itself,\n")
	p.Printf("                    or bring them back from other peers: realize approve --reject %s\n", a.Name)
}

// count says "1 file", "2 files", "1 directory", "3 directories".
func count(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	if s, ok := strings.CutSuffix(noun, "y"); ok {
		return strconv.FormatInt(n, 10) + " " + s + "ies"
	}
	return strconv.FormatInt(n, 10) + " " + noun + "s"
}
