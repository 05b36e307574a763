// Package service makes `realize daemon` a login item (SPEC §4.8): a
// systemd unit on Linux, a launchd plist on macOS. What goes in the file,
// where it goes and which commands enable it are pure functions of a Spec,
// so both systems' files can be checked on any machine; Install, Uninstall
// and Query then write or remove the file and drive the service manager
// through a Runner, which tests replace.
package service

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"

	"github.com/realizefs/realize"
)

// Names of the service, for the managers and for people.
const (
	UnitName = "realize.service"    // systemd
	Label    = "net.realize.daemon" // launchd
)

// Spec is everything a service file is made from.
type Spec struct {
	OS     string // "linux" (systemd) or "darwin" (launchd), as runtime.GOOS
	System bool   // system-wide (root) rather than the user's login session
	Binary string // absolute path of the realize binary
	Config string // absolute path of the config file
	Data   string // absolute data directory (launchd writes logs under it)
	// User is the account the daemon runs as in a system-wide service
	// (systemd User=, launchd UserName); "" runs it as root. Ignored for
	// a user service, which runs as its owner.
	User string
	Home string // the user's home directory: where a user service's file goes
	UID  int    // the user's uid: launchd's gui/<uid> domain (user, macOS)
}

// Plan is what installing the service means: the file, and the commands.
type Plan struct {
	Manager string // "systemd" or "launchd"
	Scope   string // "user" or "system"
	Path    string // where the file goes
	Content []byte
	// Install enables and starts the service once the file is in place;
	// Uninstall stops and disables it before the file goes; Status asks
	// the manager about it. Each is a list of argv, run in order.
	Install, Uninstall, Status [][]string
	// Logs says where the daemon's logs go: a command or a file.
	Logs string
	// MakeDirs are directories the service needs before it starts (the
	// launchd log directory), created by Install and owned by DirOwner
	// (an account name) when it is set.
	MakeDirs []string
	DirOwner string

	restart []string // systemd: restart a running service after a change
	reload  []string // systemd: daemon-reload, after the file is removed
}

// New returns the plan for s. It touches nothing.
func New(s Spec) (*Plan, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	switch s.OS {
	case "linux":
		return systemdPlan(s)
	case "darwin":
		return launchdPlan(s)
	}
	return nil, &realize.Error{Op: "service", Kind: realize.Unsupported,
		Err: fmt.Errorf("no service manager support on %s: run `realize daemon` from your own init system", s.OS)}
}

func (s Spec) check() error {
	for _, f := range []struct{ name, v string }{{"binary", s.Binary}, {"config", s.Config}, {"data directory", s.Data}} {
		if !filepath.IsAbs(f.v) {
			return &realize.Error{Op: "service", Kind: realize.Invalid, Path: f.v, Err: fmt.Errorf("the %s path must be absolute", f.name)}
		}
		if strings.ContainsAny(f.v, "\n\x00") {
			return &realize.Error{Op: "service", Kind: realize.Invalid, Path: f.v, Err: fmt.Errorf("the %s path contains a newline or NUL", f.name)}
		}
	}
	if !s.System && !filepath.IsAbs(s.Home) {
		return &realize.Error{Op: "service", Kind: realize.Invalid, Err: errors.New("no home directory for a user service (is HOME set?)")}
	}
	if strings.ContainsAny(s.User, " \t\n\x00\"'\\/") {
		return &realize.Error{Op: "service", Kind: realize.Invalid, Err: fmt.Errorf("user name %q is not usable", s.User)}
	}
	return nil
}

// Args is the daemon's command line as the service runs it.
func (s Spec) Args() []string {
	return []string{s.Binary, "--config", s.Config, "daemon"}
}

// LogFile is where launchd sends the daemon's standard output and error.
func (s Spec) LogFile() string { return filepath.Join(s.Data, "logs", "daemon.log") }

func (s Spec) scope() string {
	if s.System {
		return "system"
	}
	return "user"
}

// ---- systemd ----

func systemdPlan(s Spec) (*Plan, error) {
	unit, err := Unit(s)
	if err != nil {
		return nil, err
	}
	ctl := []string{"systemctl"}
	path := filepath.Join("/etc/systemd/system", UnitName)
	logs := "journalctl -u realize"
	if !s.System {
		ctl = append(ctl, "--user")
		path = filepath.Join(s.Home, ".config", "systemd", "user", UnitName)
		logs = "journalctl --user -u realize"
	}
	c := func(args ...string) []string { return append(append([]string(nil), ctl...), args...) }
	return &Plan{
		Manager:   "systemd",
		Scope:     s.scope(),
		Path:      path,
		Content:   unit,
		Install:   [][]string{c("daemon-reload"), c("enable", "--now", UnitName)},
		Uninstall: [][]string{c("disable", "--now", UnitName)},
		Status:    [][]string{c("is-enabled", UnitName), c("is-active", UnitName)},
		Logs:      logs,
		restart:   c("try-restart", UnitName),
		reload:    c("daemon-reload"),
	}, nil
}

// Unit returns the systemd unit for s.
//
// Hardening is limited to what keeps the daemon working: NoNewPrivileges
// and friends are plain process flags or seccomp filters. ProtectHome,
// ProtectSystem, PrivateTmp and the like are left out on purpose: arenas
// and the data directory usually live in the home directory, the control
// socket falls back to a directory under /tmp that the CLI must see, and
// each of them puts the daemon in a mount namespace of its own (in a user
// unit they need unprivileged user namespaces, and fail where those are
// off).
func Unit(s Spec) ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	var exec []string
	for _, a := range s.Args() {
		exec = append(exec, systemdQuote(a))
	}
	var b bytes.Buffer
	err := unitTemplate.Execute(&b, map[string]any{
		"System": s.System,
		"User":   s.User,
		"Exec":   strings.Join(exec, " "),
	})
	return b.Bytes(), err
}

var unitTemplate = template.Must(template.New("unit").Parse(`# Written by ` + "`realize service install`" + `; remove it with ` + "`realize service uninstall`" + `.
[Unit]
Description=Realize, peer-to-peer partially synced filesystem
Documentation=https://github.com/realizefs/realize
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
ExecStart={{.Exec}}
{{- if and .System .User}}
User={{.User}}
{{- end}}
Restart=on-failure
RestartSec=5s
# SIGTERM (the default) shuts the daemon down cleanly; give it time to flush.
TimeoutStopSec=60s
NoNewPrivileges=true
LockPersonality=true
RestrictRealtime=true
RestrictSUIDSGID=true

[Install]
WantedBy={{if .System}}multi-user.target{{else}}default.target{{end}}
`))

// systemdQuote quotes a word of ExecStart= when it must be: systemd splits
// on whitespace, honours "..." with C escapes, and expands % specifiers
// and $VARIABLES.
func systemdQuote(a string) string {
	a = strings.ReplaceAll(a, "%", "%%")
	a = strings.ReplaceAll(a, "$", "$$")
	if a != "" && !strings.ContainsAny(a, " \t\"'\\;") {
		return a
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(a) + `"`
}

// ---- launchd ----

func launchdPlan(s Spec) (*Plan, error) {
	doc, err := Plist(s)
	if err != nil {
		return nil, err
	}
	domain := "gui/" + strconv.Itoa(s.UID)
	path := filepath.Join(s.Home, "Library", "LaunchAgents", Label+".plist")
	if s.System {
		domain = "system"
		path = filepath.Join("/Library/LaunchDaemons", Label+".plist")
	}
	owner := ""
	if s.System {
		owner = s.User
	}
	return &Plan{
		Manager:   "launchd",
		Scope:     s.scope(),
		Path:      path,
		Content:   doc,
		Install:   [][]string{{"launchctl", "bootstrap", domain, path}},
		Uninstall: [][]string{{"launchctl", "bootout", domain + "/" + Label}},
		Status:    [][]string{{"launchctl", "print", domain + "/" + Label}, {"launchctl", "print-disabled", domain}},
		Logs:      s.LogFile(),
		MakeDirs:  []string{filepath.Dir(s.LogFile())},
		DirOwner:  owner,
	}, nil
}

// Plist returns the launchd property list for s: run at load, restarted
// when it exits with a failure (not after a clean stop), output into the
// data directory's logs.
func Plist(s Spec) ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	args := make([]any, 0, 4)
	for _, a := range s.Args() {
		args = append(args, a)
	}
	d := dict{
		{"Label", Label},
		{"ProgramArguments", args},
	}
	if s.System && s.User != "" {
		d = append(d, entry{"UserName", s.User})
	}
	d = append(d,
		entry{"RunAtLoad", true},
		entry{"KeepAlive", dict{{"SuccessfulExit", false}}},
		entry{"ThrottleInterval", 10},
		entry{"StandardOutPath", s.LogFile()},
		entry{"StandardErrorPath", s.LogFile()},
	)
	var b bytes.Buffer
	b.WriteString(xml.Header)
	b.WriteString(`<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">` + "\n")
	b.WriteString(`<plist version="1.0">` + "\n")
	writeValue(&b, d, 0)
	b.WriteString("</plist>\n")
	return b.Bytes(), nil
}

// A dict keeps its keys in the order written, so the file is stable.
type (
	dict  []entry
	entry struct {
		key   string
		value any // string, bool, int, []any or dict
	}
)

func writeValue(b *bytes.Buffer, v any, depth int) {
	indent := strings.Repeat("\t", depth)
	switch v := v.(type) {
	case string:
		b.WriteString(indent + "<string>")
		xml.EscapeText(b, []byte(v))
		b.WriteString("</string>\n")
	case bool:
		fmt.Fprintf(b, "%s<%t/>\n", indent, v)
	case int:
		fmt.Fprintf(b, "%s<integer>%d</integer>\n", indent, v)
	case []any:
		b.WriteString(indent + "<array>\n")
		for _, e := range v {
			writeValue(b, e, depth+1)
		}
		b.WriteString(indent + "</array>\n")
	case dict:
		b.WriteString(indent + "<dict>\n")
		for _, e := range v {
			b.WriteString(indent + "\t<key>")
			xml.EscapeText(b, []byte(e.key))
			b.WriteString("</key>\n")
			writeValue(b, e.value, depth+1)
		}
		b.WriteString(indent + "</dict>\n")
	default:
		panic(fmt.Sprintf("plist: unsupported value %T", v))
	}
}
