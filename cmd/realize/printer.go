package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/urfave/cli/v3"
)

// printer writes a command's results for a person (text) or a program
// (--json: one JSON value per line). Logs never go through it, and it
// never writes errors: report does.
type printer struct {
	w    io.Writer
	json bool
	enc  *json.Encoder
}

func newPrinter(cmd *cli.Command, e *env) *printer {
	enc := json.NewEncoder(e.stdout)
	enc.SetEscapeHTML(false)
	return &printer{w: e.stdout, json: cmd.Bool("json"), enc: enc}
}

// JSON writes v as one line of JSON.
func (p *printer) JSON(v any) error { return p.enc.Encode(v) }

// Printf writes text.
func (p *printer) Printf(format string, args ...any) { fmt.Fprintf(p.w, format, args...) }

// humanBytes renders n like df -h, in powers of 1000 as disk vendors and
// size flags ("50GB") do.
func humanBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}
