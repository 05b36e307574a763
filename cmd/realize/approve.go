package main

import (
	"context"
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
			"Deletions found after status last showed the hold stay held. To undo the\n" +
			"deletions instead, put the files back (remount the disk, restore them): the\n" +
			"hold ends by itself. Exits 1 if nothing is held.",
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.Args().Len() > 1 {
				return usagef("approve: want at most one ARENA, got %d arguments", cmd.Args().Len())
			}
			cfg, err := loadConfig(cmd, e)
			if err != nil {
				return err
			}
			var req control.ApproveRequest
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
				return p.JSON(rep)
			}
			printApproved(p, rep)
			return nil
		},
	}
}

func printApproved(p *printer, rep *control.ApproveReport) {
	for _, a := range rep.Approved {
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
	p.Printf("           to undo: put the files back (remount, restore); the hold then ends by itself\n")
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
