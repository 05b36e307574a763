package main

import (
	"fmt"
	"strings"

	"github.com/realizefs/realize/internal/control"
)

// barWidth is the width of a transfer's progress bar, brackets excluded.
const barWidth = 24

// printTransfers lists the running transfers, one progress line each:
//
//	sync  docs:photos/a.jpg  [#########...............]  38%  3.8 MB of 10.0 MB  1.2 MB/s  from nas
//
// The lines are drawn from one status snapshot: `status --watch` redraws
// them every second.
func printTransfers(p *printer, xs []control.TransferStatus) {
	if len(xs) == 0 {
		p.Printf("\ntransfers none running\n")
		return
	}
	p.Printf("\ntransfers\n")
	for _, x := range xs {
		what := string(x.Arena) + ":" + x.Path.Quote()
		if x.Path == "" && x.Blob != nil {
			what = string(x.Arena) + ": content " + x.Blob.Short()
		}
		line := fmt.Sprintf("  %-4s  %s", x.Kind, what)
		if x.Kind == control.TransferPin {
			line += fmt.Sprintf("  %d/%d files", x.FilesDone, x.Files)
		}
		p.Printf("%s\n    %s\n", line, progressLine(&x))
	}
}

// progressLine is a transfer's bar, share, amounts, rate and peer.
func progressLine(x *control.TransferStatus) string {
	var b strings.Builder
	if x.Bytes > 0 {
		done := min(max(x.BytesDone, 0), x.Bytes)
		fill := int(done * barWidth / x.Bytes)
		fmt.Fprintf(&b, "[%s%s] %3d%%  %s of %s", strings.Repeat("#", fill), strings.Repeat(".", barWidth-fill),
			done*100/x.Bytes, humanBytes(x.BytesDone), humanBytes(x.Bytes))
	} else {
		fmt.Fprintf(&b, "%s", humanBytes(x.BytesDone))
	}
	fmt.Fprintf(&b, "  %s/s", humanBytes(x.Rate))
	switch {
	case x.PeerName != "":
		fmt.Fprintf(&b, "  from %s", x.PeerName)
	case x.Peer != nil:
		fmt.Fprintf(&b, "  from %s", x.Peer.Short())
	}
	if x.Current != "" {
		fmt.Fprintf(&b, "  now %s", x.Current.Quote())
	}
	return b.String()
}
