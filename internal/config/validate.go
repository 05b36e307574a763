package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/pelletier/go-toml/v2"
	"github.com/realizefs/realize"
)

// fileConfig is the document as written. Optional values are pointers so
// that "absent" (take the default) differs from an explicit zero.
type fileConfig struct {
	Name   string  `toml:"name"`
	Data   string  `toml:"data"`
	Listen *string `toml:"listen"`
	NFS    *string `toml:"nfs"`
	// Metrics is the Prometheus endpoint; absent or empty: none.
	Metrics *string `toml:"metrics"`
	Log     struct {
		Level  string `toml:"level"`
		Format string `toml:"format"`
	} `toml:"log"`
	Scan struct {
		Rescan      *duration `toml:"rescan"`
		Debounce    *duration `toml:"debounce"`
		HashWorkers int       `toml:"hash_workers"`
	} `toml:"scan"`
	History struct {
		AuditKeep     *duration `toml:"audit_keep"`
		InactiveAfter *duration `toml:"inactive_after"`
	} `toml:"history"`
	Cache struct {
		Max   *Size `toml:"max"`
		Leave *Size `toml:"leave"`
	} `toml:"cache"`
	Arenas []fileArena `toml:"arena"`
	Peers  []filePeer  `toml:"peer"`
}

type fileArena struct {
	Name        string   `toml:"name"`
	Dir         string   `toml:"dir"`
	Pin         bool     `toml:"pin"`
	Peers       []string `toml:"peers"`
	DeleteGuard *string  `toml:"delete_guard"`
}

type filePeer struct {
	Name    string  `toml:"name"`
	Key     *string `toml:"key"`
	Address string  `toml:"address"`
}

// Error is a config file that failed to load: one or more problems, each
// located at a line and a field. Its message is the list, one per line.
type Error struct {
	Problems []Problem
}

// Problem is one thing wrong in a config file.
type Problem struct {
	File  string
	Line  int    // 1-based; 0 when the problem has no one place (a missing key)
	Field string // dotted key, arenas and peers named: "arena.photos.dir"
	Msg   string
}

func (p Problem) Error() string {
	loc := p.File
	if p.Line > 0 {
		loc += ":" + strconv.Itoa(p.Line)
	}
	if p.Field == "" {
		return loc + ": " + p.Msg
	}
	return loc + ": " + p.Field + ": " + p.Msg
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

func newError(ps []Problem) error {
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].Line < ps[j].Line })
	return &realize.Error{Op: "load config", Kind: realize.Invalid, Err: &Error{Problems: ps}}
}

var typeMismatch = regexp.MustCompile(`cannot decode TOML (\w+) into .* of type (\S+)$`)

// decodeError turns the TOML library's error into a located Problem.
func decodeError(file string, ps *positions, err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		var out []Problem
		for _, e := range strict.Errors {
			line, _ := e.Position()
			out = append(out, Problem{File: file, Line: line, Field: fieldName(ps, e.Key(), line),
				Msg: "unknown key (see the commented template `realize init` writes for the valid ones)"})
		}
		return newError(out)
	}
	var de *toml.DecodeError
	if !errors.As(err, &de) {
		return newError([]Problem{{File: file, Msg: err.Error()}})
	}
	line, _ := de.Position()
	msg := strings.TrimPrefix(de.Error(), "toml: ")
	if m := typeMismatch.FindStringSubmatch(msg); m != nil {
		msg = fmt.Sprintf("wrong type: a TOML %s where %s is expected", m[1], friendlyType(m[2]))
	}
	return newError([]Problem{{File: file, Line: line, Field: fieldName(ps, de.Key(), line), Msg: msg}})
}

func friendlyType(t string) string {
	t = strings.TrimPrefix(t, "*")
	switch {
	case t == "string", strings.HasSuffix(t, "duration"), strings.HasSuffix(t, "Size"):
		return "a string"
	case t == "bool":
		return "true or false"
	case strings.HasPrefix(t, "int"):
		return "an integer"
	case strings.HasPrefix(t, "[]"):
		return "an array"
	}
	return "a table"
}

// fieldName renders a key from the decoder, naming the arena or peer the
// line belongs to when it is inside an array of tables.
func fieldName(ps *positions, key []string, line int) string {
	if len(key) > 1 && (key[0] == "arena" || key[0] == "peer") {
		if i := ps.element(key[0], line); i >= 0 {
			return elemName(key[0], i, ps.strings[fmt.Sprintf("%s[%d].name", key[0], i)]) + "." + strings.Join(key[1:], ".")
		}
	}
	return strings.Join(key, ".")
}

// elemName names the i-th arena or peer by its name when it has a usable
// one ("arena.photos"), by position otherwise ("arena[2]").
func elemName(table string, i int, name string) string {
	if name != "" && !strings.ContainsAny(name, ".[] \t\n\"") && len(name) <= 64 {
		return table + "." + name
	}
	return fmt.Sprintf("%s[%d]", table, i)
}

// validator builds a Config from the document, collecting every problem
// rather than stopping at the first, so a user fixes them in one go.
type validator struct {
	file string
	dir  string // relative paths are relative to this
	pos  *positions
	errs []Problem
}

// fail records a problem at key (position-index form) shown as field.
func (v *validator) fail(key, field, format string, args ...any) {
	v.errs = append(v.errs, Problem{File: v.file, Line: v.pos.line(key), Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) build(raw *fileConfig) *Config {
	c := &Config{File: v.file, Name: raw.Name}
	v.checkName("name", raw.Name)
	c.Data = v.dataDir(raw.Data)
	c.Listen = v.address("listen", raw.Listen, DefaultListen)
	c.NFS = v.address("nfs", raw.NFS, DefaultNFS)
	v.loopback("nfs", c.NFS, "the NFS server trusts whoever can reach it")
	c.Metrics = v.address("metrics", raw.Metrics, "")
	v.loopback("metrics", c.Metrics, "the metrics endpoint has no access control")
	c.Log = v.log(raw)
	c.Scan = v.scan(raw)
	c.History = v.history(raw)
	c.Cache = Cache{Max: Size{Percent: DefaultCacheMaxPercent}, Leave: Size{Bytes: DefaultCacheLeaveBytes}}
	if raw.Cache.Max != nil {
		c.Cache.Max = *raw.Cache.Max
	}
	if raw.Cache.Leave != nil {
		c.Cache.Leave = *raw.Cache.Leave
	}
	c.Peers = v.peers(raw.Peers)
	c.Arenas = v.arenas(raw.Arenas, c)
	return c
}

func (v *validator) checkName(key, name string) {
	switch {
	case name == "":
		v.fail(key, key, "required: a display name for this peer, e.g. %q", "laptop")
	case len(name) > 64:
		v.fail(key, key, "longer than 64 bytes")
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		v.fail(key, key, "contains control characters")
	}
}

func (v *validator) dataDir(s string) string {
	if s == "" {
		v.fail("data", "data", "required: the directory for this peer's database, key and socket")
		return ""
	}
	d := v.abs(s)
	if fi, err := os.Stat(d); err == nil && !fi.IsDir() {
		v.fail("data", "data", "%q is not a directory", d)
	}
	return d
}

func (v *validator) abs(p string) string {
	if strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[2:])
		}
	}
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(v.dir, p)
}

func (v *validator) address(key string, s *string, def string) string {
	if s == nil {
		return def
	}
	if *s == "" {
		return ""
	}
	host, port, err := net.SplitHostPort(*s)
	if err != nil {
		v.fail(key, key, "%q is not HOST:PORT", *s)
		return ""
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		v.fail(key, key, "%q: port must be a number from 1 to 65535", *s)
	}
	_ = host // any host name or address; it is resolved when used
	return *s
}

// loopback insists on a loopback address: the NFS server and the metrics
// endpoint have no access control of their own beyond listening where only
// this machine can reach; why says so in the message.
func (v *validator) loopback(key, addr, why string) {
	if addr == "" {
		return
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return // reported by address
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		v.fail(key, key, "%q: must be a loopback address (127.0.0.1:PORT): %s", addr, why)
	}
}

func (v *validator) log(raw *fileConfig) Log {
	l := Log{Level: slog.LevelInfo, Format: "text"}
	if raw.Log.Level != "" {
		if err := l.Level.UnmarshalText([]byte(raw.Log.Level)); err != nil {
			v.fail("log.level", "log.level", "%q: want debug, info, warn or error", raw.Log.Level)
		}
	}
	switch raw.Log.Format {
	case "":
	case "text", "json":
		l.Format = raw.Log.Format
	default:
		v.fail("log.format", "log.format", "%q: want text or json", raw.Log.Format)
	}
	return l
}

func (v *validator) scan(raw *fileConfig) Scan {
	s := Scan{
		Rescan:      orDefault(raw.Scan.Rescan, DefaultRescan),
		Debounce:    orDefault(raw.Scan.Debounce, DefaultDebounce),
		HashWorkers: raw.Scan.HashWorkers,
	}
	if s.Rescan < time.Second {
		v.fail("scan.rescan", "scan.rescan", "%s is too short: at least 1s", s.Rescan)
	}
	switch {
	case s.HashWorkers < 0 || s.HashWorkers > 1024:
		v.fail("scan.hash_workers", "scan.hash_workers", "%d: want 0 (one per CPU) to 1024", s.HashWorkers)
	case s.HashWorkers == 0:
		s.HashWorkers = runtime.NumCPU()
	}
	return s
}

func (v *validator) history(raw *fileConfig) History {
	h := History{
		AuditKeep:     orDefault(raw.History.AuditKeep, DefaultAuditKeep),
		InactiveAfter: orDefault(raw.History.InactiveAfter, DefaultInactiveAfter),
	}
	if h.InactiveAfter < time.Minute {
		v.fail("history.inactive_after", "history.inactive_after", "%s is too short: at least 1m (a peer silent that long stops holding back trimming)", h.InactiveAfter)
	}
	return h
}

func orDefault(d *duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return time.Duration(*d)
}
