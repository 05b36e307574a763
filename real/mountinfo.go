package real

import (
	"bufio"
	"io"
	"strconv"
	"strings"
)

// overlayMount is an overlayfs mount found in a mount table.
type overlayMount struct {
	target string // where it is mounted
	upper  string // its upperdir option
}

// parseOverlayMounts reads /proc/self/mountinfo's format (proc(5)) and
// returns its overlayfs mounts. A line is
//
//	ID PARENT MAJ:MIN ROOT TARGET OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS
//
// with spaces, tabs, newlines and backslashes in paths written as \ooo.
// `realize mount` refuses paths with commas in overlay options, so the
// super options split on commas.
func parseOverlayMounts(r io.Reader) []overlayMount {
	var out []overlayMount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if len(f) < 5 || sep < 0 || sep+3 >= len(f) || f[sep+1] != "overlay" {
			continue
		}
		for _, o := range strings.Split(f[sep+3], ",") {
			if v, ok := strings.CutPrefix(o, "upperdir="); ok {
				out = append(out, overlayMount{target: unescapeMountinfo(f[4]), upper: unescapeMountinfo(v)})
			}
		}
	}
	return out
}

// unescapeMountinfo undoes the kernel's \ooo escapes (octal).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
