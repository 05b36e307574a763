package config

import (
	"bytes"
	_ "embed"
	"fmt"
	"strings"
	"text/template"
)

//go:embed template.toml
var templateText string

// Template holds what `realize init` fills into the commented config.
type Template struct {
	Name   string
	Data   string
	Listen string // "" for a deaf peer
	NFS    string
	Arenas []TemplateArena
}

// TemplateArena is one [[arena]] of a new config.
type TemplateArena struct {
	Name string
	Dir  string
	Pin  bool
}

// Render returns the commented config file for t. Every key is written with
// a comment that explains it, so the file documents itself.
func Render(t Template) ([]byte, error) {
	tmpl, err := template.New("config").Funcs(template.FuncMap{"quote": quote}).Parse(templateText)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, t); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// quote writes s as a TOML basic string. Go's %q is close but not equal
// (it emits \x and \a escapes TOML does not have).
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
