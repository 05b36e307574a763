package main

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/household"
	"github.com/realizefs/realize/internal/config"
	"github.com/urfave/cli/v3"
)

func initCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "init",
		Usage: "create this peer's key and a commented config",
		Description: "Writes the config (at --config, $" + config.EnvVar + " or the default place) and the\n" +
			"peer's private key (mode 0600) in the data directory. Refuses to overwrite a config.\n" +
			"An existing key in the data directory is kept, so the peer keeps its identity.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "name", Usage: "this peer's display `NAME` (default: the host name)"},
			&cli.StringFlag{Name: "listen", Value: config.DefaultListen, Usage: "QUIC `HOST:PORT` other peers dial; empty = deaf"},
			&cli.BoolFlag{Name: "deaf", Usage: "listen nowhere: this peer only dials out"},
			&cli.StringFlag{Name: "nfs", Value: config.DefaultNFS, Usage: "NFS server `HOST:PORT` (keep it on loopback)"},
			&cli.StringFlag{Name: "data", Usage: "data `DIR`: database, key, socket (default: " + defaultDataHint(e) + ")"},
			&cli.StringSliceFlag{Name: "arena", Usage: "an arena `NAME=DIR` (repeatable); DIR is created if missing"},
			&cli.BoolFlag{Name: "pin", Usage: "pin the arenas given with --arena: keep every file real here (default: fetch on demand)"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if err := noArgs(cmd); err != nil {
				return err
			}
			req, err := initRequest(cmd, e)
			if err != nil {
				return err
			}
			res, err := doInit(e, req)
			if err != nil {
				return err
			}
			return printInit(newPrinter(cmd, e), res)
		},
	}
}

func defaultDataHint(e *env) string {
	if d, err := config.DefaultDataDir(e.getenv); err == nil {
		return d
	}
	return "<user data dir>/realize"
}

// initResult is what init did, as printed (and as --json fields).
type initResult struct {
	Peer       realize.PeerID `json:"peer"`
	Name       string         `json:"name"`
	Config     string         `json:"config"`
	Key        string         `json:"key"`
	KeyCreated bool           `json:"key_created"`
	Data       string         `json:"data"`
	Listen     string         `json:"listen"`
	NFS        string         `json:"nfs"`
	Arenas     []initArena    `json:"arenas"`
}

type initArena struct {
	Name    string `json:"name"`
	Dir     string `json:"dir"`
	Pin     bool   `json:"pin"`
	Created bool   `json:"created"`
}

// initRequest checks the flags: anything wrong here is bad usage.
func initRequest(cmd *cli.Command, e *env) (*initResult, error) {
	path, err := configPath(cmd, e)
	if err != nil {
		return nil, err
	}
	res := &initResult{Name: cmd.String("name"), Data: cmd.String("data"), Listen: cmd.String("listen"), NFS: cmd.String("nfs")}
	if res.Config, err = filepath.Abs(path); err != nil {
		return nil, err
	}
	if res.Name == "" {
		res.Name = defaultName()
	}
	if cmd.Bool("deaf") && cmd.IsSet("listen") && cmd.String("listen") != "" {
		return nil, usagef("init: --deaf and --listen %q contradict each other", cmd.String("listen"))
	}
	if cmd.Bool("deaf") {
		res.Listen = ""
	}
	if res.Data == "" {
		if res.Data, err = config.DefaultDataDir(e.getenv); err != nil {
			return nil, err
		}
	}
	if res.Data, err = filepath.Abs(res.Data); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, spec := range cmd.StringSlice("arena") {
		name, dir, ok := strings.Cut(spec, "=")
		if !ok || dir == "" {
			return nil, usagef("init: --arena %q: want NAME=DIR", spec)
		}
		if _, err := realize.ParseArenaName(name); err != nil {
			return nil, usagef("init: --arena %q: arena names are 1-64 of a-z 0-9 . _ - starting with a letter or digit", spec)
		}
		if seen[name] {
			return nil, usagef("init: --arena %q: arena %q given twice", spec, name)
		}
		seen[name] = true
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, err
		}
		if rel, err := filepath.Rel(res.Data, abs); err == nil && !strings.HasPrefix(rel, "..") {
			return nil, usagef("init: --arena %q: the arena directory must not be inside the data directory %s", spec, res.Data)
		}
		res.Arenas = append(res.Arenas, initArena{Name: name, Dir: abs, Pin: cmd.Bool("pin")})
	}
	res.Key = household.KeyPath(res.Data)
	return res, nil
}

// defaultName is the host name up to the first dot, a fair display name.
func defaultName() string {
	h, err := os.Hostname()
	if h, _, _ = strings.Cut(h, "."); err != nil || h == "" {
		return "realize"
	}
	return h
}

// doInit writes the key and the config. The config is written last, and
// only after it parses, so a failed init can simply be run again.
func doInit(e *env, res *initResult) (*initResult, error) {
	const op = "init"
	if _, err := os.Lstat(res.Config); err == nil {
		return nil, &realize.Error{Op: op, Kind: realize.Exist, Path: res.Config,
			Err: errors.New("a config already exists there; not overwriting it (edit it, or pass --config to write another)")}
	}
	if err := os.MkdirAll(res.Data, 0o700); err != nil {
		return nil, &realize.Error{Op: "create data directory", Kind: realize.IO, Path: res.Data, Err: err}
	}
	for i := range res.Arenas {
		a := &res.Arenas[i]
		if _, err := os.Stat(a.Dir); errors.Is(err, fs.ErrNotExist) {
			a.Created = true
		}
		if err := os.MkdirAll(a.Dir, 0o755); err != nil {
			return nil, &realize.Error{Op: "create arena directory", Kind: realize.IO, Path: a.Dir, Err: err}
		}
	}
	doc, err := renderConfig(res)
	if err != nil {
		return nil, err
	}
	id, created, err := loadOrCreateKey(e, res.Key)
	if err != nil {
		return nil, err
	}
	res.Peer, res.KeyCreated = id.ID(), created
	if err := writeNew(res.Config, doc); err != nil {
		return nil, err
	}
	return res, nil
}

// renderConfig renders the commented config and checks it the way the
// daemon will, so init never writes a config that cannot be loaded.
func renderConfig(res *initResult) ([]byte, error) {
	t := config.Template{Name: res.Name, Data: res.Data, Listen: res.Listen, NFS: res.NFS}
	for _, a := range res.Arenas {
		t.Arenas = append(t.Arenas, config.TemplateArena{Name: a.Name, Dir: a.Dir, Pin: a.Pin})
	}
	doc, err := config.Render(t)
	if err != nil {
		return nil, &realize.Error{Op: "render config", Kind: realize.Other, Err: err}
	}
	if _, err := config.Parse(res.Config, doc); err != nil {
		return nil, err
	}
	return doc, nil
}

func loadOrCreateKey(e *env, path string) (*household.Identity, bool, error) {
	id, err := household.LoadIdentity(path)
	if err == nil {
		return id, false, nil
	}
	if realize.KindOf(err) != realize.NotExist {
		return nil, false, err
	}
	if id, err = household.NewIdentity(e.rand); err != nil {
		return nil, false, err
	}
	if err := id.Save(path); err != nil {
		return nil, false, err
	}
	return id, true, nil
}

// writeNew creates path with data; it never replaces a file.
func writeNew(path string, data []byte) error {
	const op = "write config"
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return &realize.Error{Op: op, Kind: realize.IO, Path: path, Err: err}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		kind := realize.IO
		if errors.Is(err, fs.ErrExist) {
			kind = realize.Exist
		}
		return &realize.Error{Op: op, Kind: kind, Path: path, Err: err}
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return &realize.Error{Op: op, Kind: realize.IO, Path: path, Err: err}
	}
	return nil
}

func printInit(p *printer, res *initResult) error {
	if p.json {
		return p.JSON(res)
	}
	p.Printf("Initialized peer %q.\n\n", res.Name)
	p.Printf("  peer id  %s\n", res.Peer)
	p.Printf("  config   %s\n", res.Config)
	if res.KeyCreated {
		p.Printf("  key      %s (new)\n", res.Key)
	} else {
		p.Printf("  key      %s (existing key kept)\n", res.Key)
	}
	p.Printf("  data     %s\n", res.Data)
	if res.Listen == "" {
		p.Printf("  listen   (deaf: this peer only dials out)\n")
	} else {
		p.Printf("  listen   %s\n", res.Listen)
	}
	for _, a := range res.Arenas {
		note := ""
		if a.Created {
			note = " (created)"
		}
		p.Printf("  arena    %s  %s%s\n", a.Name, a.Dir, note)
	}
	p.Printf("\nGive the peer id to your other peers (realize peer add); start the daemon with: realize daemon\n")
	return nil
}
