package real

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"unicode/utf8"

	"github.com/realizefs/realize"
)

// IgnoreFile names the files that keep paths out of an arena. Their syntax
// and scoping are those of .gitignore: a file applies to the directory that
// holds it and everything below, deeper files and later lines take
// precedence, "!" re-includes, a leading or middle "/" anchors a pattern to
// the file's directory, "**" spans directories, a trailing "/" matches only
// directories, and nothing inside an ignored directory can be re-included.
const IgnoreFile = ".realizeignore"

// ReservedPrefix starts the names the daemon keeps for itself inside an
// arena directory: temporary files of downloads (TempPrefix) and the
// directory holding conflict losers' bytes (ConflictDir). Such names are
// always ignored, whatever the ignore files say, and a peer never accepts
// them from the network.
const (
	ReservedPrefix = ".realize-"
	TempPrefix     = ReservedPrefix + "tmp-"
	ConflictDir    = ReservedPrefix + "conflicts"
)

const (
	maxIgnoreFileSize = 1 << 20 // a bigger ignore file is refused, not half read
	maxDirCache       = 1 << 16 // cached directory decisions before starting over
)

// Ignorer answers whether a path of one arena is ignored. Ignore files are
// read lazily, the first time a path below their directory is asked about,
// and kept until Reload; so building an Ignorer costs one file read, and a
// tree's ignore files are read by the scan that walks it anyway. Decisions
// about directories are cached, because every path asks about all of its
// ancestors. An Ignorer is safe for concurrent use.
type Ignorer struct {
	root   string
	logger *slog.Logger

	mu    sync.RWMutex
	gen   uint64                    // bumped by Reload: results computed before it are not cached
	files map[realize.Path]*ruleSet // per directory; nil: no ignore file there
	dirs  map[realize.Path]bool     // a directory's own decision, ancestors aside
}

// LoadIgnorer returns the Ignorer of the arena whose real directory is root,
// logging to slog's default logger. See NewIgnorer.
func LoadIgnorer(root string) (*Ignorer, error) {
	return NewIgnorer(root, slog.Default())
}

// NewIgnorer returns the Ignorer of the arena whose real directory is root.
// It reads root's own ignore file at once, so that an unreadable one is
// reported; a missing one (or a root that is not a directory) means no rules.
// Malformed patterns are logged and skipped.
func NewIgnorer(root string, logger *slog.Logger) (*Ignorer, error) {
	ig := &Ignorer{
		root:   root,
		logger: logger,
		files:  map[realize.Path]*ruleSet{},
		dirs:   map[realize.Path]bool{},
	}
	rs, err := ig.read("")
	if err != nil {
		return nil, err
	}
	ig.files[""] = rs
	return ig, nil
}

// Ignored tells whether p (a directory if isDir) is kept out of the arena:
// because a name in it is a daemon temporary file, because an ancestor
// directory is ignored, or because the last pattern matching p in the ignore
// files of its ancestors says so. The root is never ignored.
func (ig *Ignorer) Ignored(p realize.Path, isDir bool) bool {
	if p.IsRoot() {
		return false
	}
	if hasTempName(p) {
		return true
	}
	for i := 0; ; {
		j := strings.IndexByte(string(p[i:]), '/')
		if j < 0 {
			break
		}
		if ig.dirIgnored(p[:i+j]) {
			return true
		}
		i += j + 1
	}
	return ig.match(p, isDir)
}

// Reload re-reads dir's ignore file, after it was created, edited or
// removed, and forgets the ignore files below dir so that they are read
// again when needed; Reload("") starts over. If the file cannot be read the
// previous rules stay in force and the error is returned.
func (ig *Ignorer) Reload(dir realize.Path) error {
	rs, err := ig.read(dir)
	if err != nil {
		return err
	}
	ig.mu.Lock()
	defer ig.mu.Unlock()
	ig.gen++
	for d := range ig.files {
		if d.HasPrefix(dir) {
			delete(ig.files, d)
		}
	}
	ig.files[dir] = rs
	clear(ig.dirs)
	return nil
}

func hasTempName(p realize.Path) bool {
	s := string(p)
	for {
		i := strings.Index(s, ReservedPrefix)
		if i < 0 {
			return false
		}
		if i == 0 || s[i-1] == '/' {
			return true
		}
		s = s[i+len(ReservedPrefix):]
	}
}

// dirIgnored is the decision for directory d on its own; the caller has
// checked d's ancestors.
func (ig *Ignorer) dirIgnored(d realize.Path) bool {
	ig.mu.RLock()
	v, ok := ig.dirs[d]
	gen := ig.gen
	ig.mu.RUnlock()
	if ok {
		return v
	}
	v = ig.match(d, true)
	ig.mu.Lock()
	if ig.gen == gen {
		if len(ig.dirs) >= maxDirCache {
			clear(ig.dirs)
		}
		ig.dirs[d] = v
	}
	ig.mu.Unlock()
	return v
}

// match applies the rules of p's ancestors, deepest file and last line
// first; the first rule that matches decides.
func (ig *Ignorer) match(p realize.Path, isDir bool) bool {
	d := p
	for {
		d = d.Dir()
		rel := string(p)
		if !d.IsRoot() {
			rel = rel[len(d)+1:]
		}
		if matched, negate := ig.rules(d).match(rel, isDir); matched {
			return !negate
		}
		if d.IsRoot() {
			return false
		}
	}
}

// rules returns dir's ruleSet, reading its ignore file the first time.
func (ig *Ignorer) rules(dir realize.Path) *ruleSet {
	ig.mu.RLock()
	rs, ok := ig.files[dir]
	gen := ig.gen
	ig.mu.RUnlock()
	if ok {
		return rs
	}
	rs, err := ig.read(dir)
	if err != nil {
		// Not retried until Reload: a broken file is reported once.
		ig.logger.Warn("ignore file unreadable; its rules do not apply", "dir", string(dir), "err", err)
	}
	ig.mu.Lock()
	if ig.gen == gen {
		ig.files[dir] = rs
	}
	ig.mu.Unlock()
	return rs
}

// read parses dir's ignore file; no file means no rules (nil). The file is
// opened without following a symlink: its rules would come from outside the
// arena.
func (ig *Ignorer) read(dir realize.Path) (*ruleSet, error) {
	name := filepath.Join(ig.root, filepath.FromSlash(string(dir)), IgnoreFile)
	fail := func(kind realize.ErrKind, err error) (*ruleSet, error) {
		return nil, &realize.Error{Op: "read ignore file", Kind: kind, Path: name, Err: err}
	}
	f, err := os.OpenFile(name, openFlags, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return nil, nil
	case errors.Is(err, syscall.ELOOP):
		return fail(realize.Invalid, errors.New("a symlink, not followed"))
	case err != nil:
		return fail(errKind(err), err)
	}
	defer f.Close()
	fi, err := f.Stat()
	switch {
	case err != nil:
		return fail(errKind(err), err)
	case !fi.Mode().IsRegular():
		return fail(realize.Invalid, fmt.Errorf("not a regular file (%v)", fi.Mode().Type()))
	case fi.Size() > maxIgnoreFileSize:
		return fail(realize.Invalid, fmt.Errorf("%d bytes, more than the %d allowed", fi.Size(), maxIgnoreFileSize))
	}
	data, err := io.ReadAll(io.LimitReader(f, maxIgnoreFileSize+1))
	if err != nil {
		return fail(errKind(err), err)
	}
	return ig.parse(name, data), nil
}

// parse reads the rules of one ignore file, skipping (and logging)
// malformed patterns.
func (ig *Ignorer) parse(name string, data []byte) *ruleSet {
	rs := &ruleSet{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxIgnoreFileSize+1)
	for n := 1; sc.Scan(); n++ {
		r, ok, err := parseRule(sc.Text())
		if err != nil {
			ig.logger.Warn("ignore pattern skipped", "file", name, "line", n, "pattern", sc.Text(), "err", err)
			continue
		}
		if ok {
			rs.rules = append(rs.rules, r)
		}
	}
	return rs
}

// ruleSet is the rules of one ignore file, in file order.
type ruleSet struct {
	rules []rule
}

// match reports whether some rule matches rel (relative to the file's
// directory) and, for the last one that does, whether it re-includes.
func (rs *ruleSet) match(rel string, isDir bool) (matched, negate bool) {
	if rs == nil {
		return false, false
	}
	for i := len(rs.rules) - 1; i >= 0; i-- {
		if r := &rs.rules[i]; r.match(rel, isDir) {
			return true, r.negate
		}
	}
	return false, false
}

// rule is one pattern line.
type rule struct {
	segs     []glob // one per slash-separated part
	anchored bool   // matched against the whole relative path, else the last name only
	negate   bool   // "!": re-include
	dirOnly  bool   // trailing "/"
}

func (r *rule) match(rel string, isDir bool) bool {
	if r.dirOnly && !isDir {
		return false
	}
	if !r.anchored {
		return r.segs[0].match(rel[strings.LastIndexByte(rel, '/')+1:])
	}
	return matchSegs(r.segs, rel)
}

// matchSegs matches a slash-separated path against pattern parts, where a
// "**" part spans zero or more directories (one or more names when last).
func matchSegs(segs []glob, rel string) bool {
	for i, g := range segs {
		if g.kind == globStarStar {
			if i == len(segs)-1 {
				return rel != ""
			}
			for {
				if matchSegs(segs[i+1:], rel) {
					return true
				}
				j := strings.IndexByte(rel, '/')
				if j < 0 {
					return false
				}
				rel = rel[j+1:]
			}
		}
		if rel == "" {
			return false
		}
		name, rest := rel, ""
		if j := strings.IndexByte(rel, '/'); j >= 0 {
			name, rest = rel[:j], rel[j+1:]
		}
		if !g.match(name) {
			return false
		}
		rel = rest
	}
	return rel == ""
}

// parseRule parses one line of an ignore file; ok is false for blank lines
// and comments.
func parseRule(line string) (r rule, ok bool, err error) {
	line = strings.TrimSuffix(line, "\r")
	if line == "" || line[0] == '#' {
		return rule{}, false, nil
	}
	if !utf8.ValidString(line) {
		return rule{}, false, errors.New("not valid UTF-8")
	}
	// Trailing spaces do not count unless escaped with a backslash.
	for strings.HasSuffix(line, " ") && !strings.HasSuffix(line, `\ `) {
		line = line[:len(line)-1]
	}
	if line == "" {
		return rule{}, false, nil
	}
	if line[0] == '!' {
		r.negate = true
		line = line[1:]
	}
	if strings.HasSuffix(line, "/") {
		r.dirOnly = true
		line = line[:len(line)-1]
	}
	r.anchored = strings.Contains(line, "/")
	line = strings.TrimPrefix(line, "/")
	if line == "" {
		return rule{}, false, errors.New("empty pattern")
	}
	for _, part := range strings.Split(line, "/") {
		if part == "" {
			return rule{}, false, errors.New("empty path component")
		}
		g, err := parseGlob(part)
		if err != nil {
			return rule{}, false, err
		}
		r.segs = append(r.segs, g)
	}
	return r, true, nil
}

type globKind uint8

const (
	globExact    globKind = iota // no wildcard: compare
	globSuffix                   // "*" then a literal: "*.o"
	globPrefix                   // a literal then "*": "core.*"
	globGeneral                  // anything else: path.Match
	globStarStar                 // a whole "**" part
)

// glob is one slash-free part of a pattern. The common shapes are matched
// without path.Match: a rescan asks about every file.
type glob struct {
	kind globKind
	lit  string // exact, suffix or prefix text
	pat  string // the path.Match form, for globGeneral
}

func (g glob) match(name string) bool {
	switch g.kind {
	case globExact:
		return name == g.lit
	case globSuffix:
		return strings.HasSuffix(name, g.lit)
	case globPrefix:
		return strings.HasPrefix(name, g.lit)
	case globStarStar:
		return true
	}
	ok, _ := path.Match(g.pat, name) // the pattern was validated
	return ok
}

// parseGlob translates a gitignore wildcard into path.Match syntax (which
// lacks "[!...]", a "]" first in a class and POSIX classes) and picks the
// cheapest way to match it.
func parseGlob(s string) (glob, error) {
	if s == "**" {
		return glob{kind: globStarStar}, nil
	}
	var pat, lit strings.Builder
	stars, others := 0, 0 // wildcards: leading/trailing '*', anything else
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			if i+1 == len(s) {
				return glob{}, errors.New("trailing backslash")
			}
			i++
			pat.WriteByte('\\')
			pat.WriteByte(s[i])
			lit.WriteByte(s[i])
		case '*':
			if i == 0 || i == len(s)-1 {
				stars++
			} else {
				others++
			}
			pat.WriteByte(c)
		case '?':
			others++
			pat.WriteByte(c)
		case '[':
			end, class, err := translateClass(s, i)
			if err != nil {
				return glob{}, err
			}
			others++
			pat.WriteString(class)
			i = end
		default:
			pat.WriteByte(c)
			lit.WriteByte(c)
		}
	}
	g := glob{kind: globGeneral, pat: pat.String(), lit: lit.String()}
	if _, err := path.Match(g.pat, ""); err != nil {
		return glob{}, fmt.Errorf("bad wildcard %q: %w", s, err)
	}
	switch {
	case others > 0 || stars > 1:
		// general
	case stars == 0:
		g.kind = globExact
	case s[0] == '*':
		g.kind = globSuffix
	default:
		g.kind = globPrefix
	}
	return g, nil
}

// translateClass converts the bracket expression starting at s[i] and
// returns the index of its closing ']'.
func translateClass(s string, i int) (end int, class string, err error) {
	var b strings.Builder
	b.WriteByte('[')
	i++
	if i < len(s) && (s[i] == '!' || s[i] == '^') {
		b.WriteByte('^')
		i++
	}
	for first := true; ; first = false {
		if i >= len(s) {
			return 0, "", errors.New("unclosed '['")
		}
		if s[i] == ']' && !first {
			b.WriteByte(']')
			return i, b.String(), nil
		}
		if strings.HasPrefix(s[i:], "[:") {
			if j := strings.Index(s[i+2:], ":]"); j >= 0 {
				ranges, ok := posixClass(s[i+2 : i+2+j])
				if !ok {
					return 0, "", fmt.Errorf("unknown class [:%s:]", s[i+2:i+2+j])
				}
				b.WriteString(ranges)
				i += j + 4
				continue
			}
		}
		lo, n, err := classChar(s, i)
		if err != nil {
			return 0, "", err
		}
		i += n
		if i+1 < len(s) && s[i] == '-' && s[i+1] != ']' {
			hi, m, err := classChar(s, i+1)
			if err != nil {
				return 0, "", err
			}
			i += 1 + m
			b.WriteString(lo + "-" + hi)
			continue
		}
		b.WriteString(lo)
	}
}

// classChar returns the character at s[i] (after a backslash, if any),
// escaped for a path.Match class, and how many bytes it took.
func classChar(s string, i int) (string, int, error) {
	n := 0
	if s[i] == '\\' {
		n = 1
		if i+1 == len(s) {
			return "", 0, errors.New("trailing backslash")
		}
	}
	_, size := utf8.DecodeRuneInString(s[i+n:])
	return `\` + s[i+n:i+n+size], n + size, nil
}

// posixClass returns the path.Match ranges of a POSIX character class.
func posixClass(name string) (string, bool) {
	switch name {
	case "alpha":
		return "a-zA-Z", true
	case "digit":
		return "0-9", true
	case "alnum":
		return "a-zA-Z0-9", true
	case "upper":
		return "A-Z", true
	case "lower":
		return "a-z", true
	case "xdigit":
		return "0-9a-fA-F", true
	case "space":
		return " \t\n\v\f\r", true
	case "blank":
		return " \t", true
	case "punct":
		return `\!-\/\:-\@\[-\` + "`" + `\{-\~`, true
	case "cntrl":
		return "\x00-\x1f\x7f", true
	case "print":
		return ` -\~`, true
	case "graph":
		return `\!-\~`, true
	}
	return "", false
}
