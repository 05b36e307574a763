package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/realizefs/realize/internal/config"
	"github.com/realizefs/realize/internal/control"
)

// pathStatus prints `realize status PATH`.
func pathStatus(ctx context.Context, c *control.Client, cfg *config.Config, p *printer, arg string) error {
	ref, err := resolveArg(cfg, arg)
	if err != nil {
		return err
	}
	st, err := c.PathStatus(ctx, ref)
	if err != nil {
		return err
	}
	if p.json {
		return p.JSON(st)
	}
	p.Printf("%s:%s  %s\n", st.Arena, st.Path.Quote(), st.Kind)
	from := "the arena's default"
	if st.MarkFrom != nil {
		from = "set on " + st.MarkFrom.Quote()
		if *st.MarkFrom == st.Path {
			from = "set here"
		}
	}
	p.Printf("  mark     %s (%s)\n", st.Mark, from)
	switch st.Kind {
	case "dir":
		p.Printf("  files    %d real, %d unreal\n", st.RealFiles, st.UnrealFiles)
	case "file":
		state := st.State
		if st.State == "cached" && st.Size > 0 {
			state = fmt.Sprintf("cached %d%%", st.CachedBytes*100/st.Size)
		}
		p.Printf("  state    %s\n", state)
		p.Printf("  size     %s  %s\n", humanBytes(st.Size), st.Hash)
		if !st.MTime.IsZero() {
			p.Printf("  mtime    %s\n", st.MTime.Local().Format(time.DateTime))
		}
		var who []string
		for _, h := range st.Holders {
			n := h.Name
			if n == "" {
				n = h.Peer.Short()
			}
			who = append(who, n)
		}
		if len(who) == 0 {
			who = []string{"no peer known"}
		}
		p.Printf("  held by  %s\n", strings.Join(who, ", "))
	}
	return nil
}
