// Package config reads, checks and writes Realize's one configuration file,
// a TOML document. It is strict: an unknown key, a wrong type or an
// impossible value is an error that names the file, the line and the field
// (`config.toml:12: arena.photos.dir: directory "/x" does not exist`),
// because a silently ignored typo in a sync tool means files that quietly
// do not sync.
//
// Relative paths in the file are relative to the file's directory, so a
// config and its data can be moved together.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/realizefs/realize"
)

// EnvVar names the environment variable that points at the config file;
// the --config flag wins over it.
const EnvVar = "REALIZE_CONFIG"

// Defaults for keys the file leaves out.
const (
	DefaultListen        = "0.0.0.0:7741"
	DefaultNFS           = "127.0.0.1:7742"
	DefaultRescan        = 5 * time.Minute
	DefaultDebounce      = 200 * time.Millisecond
	DefaultAuditKeep     = 365 * 24 * time.Hour
	DefaultInactiveAfter = 30 * 24 * time.Hour
	// DefaultDeleteGuard is an arena's delete_guard, in percent.
	DefaultDeleteGuard = 50.0
)

// Cache limits when the file does not set them: 10% of the disk, and leave
// 5 GB free.
const (
	DefaultCacheMaxPercent = 10
	DefaultCacheLeaveBytes = 5e9
)

// ReservedArena is a name no arena may take: the mount's root shows the
// conflicts/ tree beside the arenas.
const ReservedArena = "conflicts"

// Config is a loaded, validated configuration. Paths are absolute and
// clean; durations and sizes are parsed.
type Config struct {
	File    string // the file it was loaded from (absolute)
	Name    string // this peer's display name
	Data    string // data directory: database, key, control socket
	Listen  string // QUIC listen address; "" = deaf peer (dials out only)
	NFS     string // NFS server address; "" = no NFS server
	Metrics string // Prometheus endpoint address (loopback); "" = none
	Log     Log
	Scan    Scan
	History History
	Cache   Cache
	Arenas  []Arena
	Peers   []Peer
}

// Log configures the daemon's logger.
type Log struct {
	Level  slog.Level
	Format string // "text" or "json"
}

// Scan configures the indexer of the real directories.
type Scan struct {
	Rescan      time.Duration // full rescan period (catches what watching misses)
	Debounce    time.Duration // quiet time after a change before it is indexed
	HashWorkers int           // concurrent hashers; never 0 after Load
}

// History configures history retention.
type History struct {
	AuditKeep     time.Duration // how long `realize log` keeps entries
	InactiveAfter time.Duration // a peer silent longer than this stops holding back trimming
}

// Cache bounds the cache of unreal files' bytes.
type Cache struct {
	Max   Size // at most this much
	Leave Size // and always leave this much free on the disk
}

// Arena is one arena this peer takes part in.
type Arena struct {
	Name  realize.ArenaName
	Dir   string   // the real directory (absolute)
	Pin   bool     // the arena's default mark: real everywhere below unless unpinned
	Peers []string // names of the peers it is shared with; empty = every peer
	// DeleteGuard is the share of the arena's files, in percent, that one
	// batch of local deletions may remove before it is held for
	// `realize approve`; 0 = no limit (docs/decisions/0017-delete-guard.md).
	DeleteGuard float64
}

// Peer is another peer of the household.
type Peer struct {
	Name    string
	Key     realize.PeerID
	Address string // HOST:PORT to dial; "" = deaf, it dials us
}

// Arena returns the arena called name.
func (c *Config) Arena(name realize.ArenaName) (*Arena, bool) {
	for i := range c.Arenas {
		if c.Arenas[i].Name == name {
			return &c.Arenas[i], true
		}
	}
	return nil, false
}

// Peer returns the peer called name.
func (c *Config) Peer(name string) (*Peer, bool) {
	for i := range c.Peers {
		if c.Peers[i].Name == name {
			return &c.Peers[i], true
		}
	}
	return nil, false
}

// SharedWith tells whether arena a is shared with peer p by this side's
// config (the other side's config must agree too).
func (a *Arena) SharedWith(p string) bool {
	if len(a.Peers) == 0 {
		return true
	}
	for _, n := range a.Peers {
		if n == p {
			return true
		}
	}
	return false
}

// DefaultPath returns where the config lives when neither --config nor
// REALIZE_CONFIG says otherwise: <os.UserConfigDir>/realize/config.toml.
func DefaultPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", &realize.Error{Op: "find config", Kind: realize.NotExist,
			Err: fmt.Errorf("%v; pass --config or set %s", err, EnvVar)}
	}
	return filepath.Join(dir, "realize", "config.toml"), nil
}

// DefaultDataDir returns the conventional data directory of the platform:
// $XDG_DATA_HOME/realize or ~/.local/share/realize, and
// ~/Library/Application Support/realize on macOS.
func DefaultDataDir(getenv func(string) string) (string, error) {
	if runtime.GOOS != "darwin" {
		if d := getenv("XDG_DATA_HOME"); filepath.IsAbs(d) {
			return filepath.Join(d, "realize"), nil
		}
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", &realize.Error{Op: "find data directory", Kind: realize.NotExist, Err: err}
	}
	if runtime.GOOS == "darwin" {
		return filepath.Join(home, "Library", "Application Support", "realize"), nil
	}
	return filepath.Join(home, ".local", "share", "realize"), nil
}

// Load reads and validates the config file at path.
func Load(path string) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, &realize.Error{Op: "load config", Kind: realize.Invalid, Path: path, Err: err}
	}
	doc, err := os.ReadFile(abs)
	if err != nil {
		kind := realize.IO
		switch {
		case errors.Is(err, fs.ErrNotExist):
			kind = realize.NotExist
			err = errors.New("no config file; create one with `realize init`")
		case errors.Is(err, fs.ErrPermission):
			kind = realize.Permission
		}
		return nil, &realize.Error{Op: "load config", Kind: kind, Path: abs, Err: err}
	}
	return Parse(abs, doc)
}

// Parse validates doc as the content of the config file at file (an
// absolute path: relative paths inside are resolved against its directory).
func Parse(file string, doc []byte) (*Config, error) {
	ps := indexPositions(doc)
	var raw fileConfig
	dec := toml.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return nil, decodeError(file, ps, err)
	}
	v := &validator{file: file, dir: filepath.Dir(file), pos: ps}
	c := v.build(&raw)
	if len(v.errs) > 0 {
		return nil, newError(v.errs)
	}
	return c, nil
}
