package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/household"
	"github.com/realizefs/realize/internal/config"
	"github.com/urfave/cli/v3"
)

func peerAddCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "add",
		Usage:     "add a peer to the household: its name here, its key, and where to dial it",
		ArgsUsage: "NAME KEY [HOST:PORT]",
		Description: "KEY is what `realize id` prints on that peer. Without HOST:PORT the peer is\n" +
			"deaf: it dials this one, and that connection serves both directions.\n" +
			"Appends a commented [[peer]] table to the config.",
		Action: func(ctx context.Context, cmd *cli.Command) error {
			args := cmd.Args().Slice()
			if len(args) < 2 || len(args) > 3 {
				return usagef("peer add: want NAME KEY [HOST:PORT], got %d arguments", len(args))
			}
			p := config.Peer{Name: args[0]}
			if len(args) == 3 {
				p.Address = args[2]
			}
			path, err := configPath(cmd, e)
			if err != nil {
				return err
			}
			if p.Key, err = peerKey(path, args[1]); err != nil {
				return err
			}
			cfg, err := config.AddPeer(path, p)
			if err != nil {
				return err
			}
			return printPeerEdit(newPrinter(cmd, e), "Added", "to", p, cfg.File)
		},
	}
}

// peerKey parses a key pasted from `realize id` on another peer and
// refuses this peer's own: a peer cannot be its own neighbour, and the
// mistake (running `realize id` on the wrong machine) is an easy one.
func peerKey(path, s string) (realize.PeerID, error) {
	const op = "add peer"
	key, err := realize.ParsePeerID(strings.ToLower(strings.TrimSpace(s)))
	if err != nil {
		return key, &realize.Error{Op: op, Kind: realize.Invalid,
			Err: fmt.Errorf("%q is not a peer key: want the 64 hex digits `realize id` prints on that peer", s)}
	}
	cfg, err := config.Load(path)
	if err != nil {
		return key, err
	}
	id, err := household.LoadIdentity(household.KeyPath(cfg.Data))
	if err != nil && realize.KindOf(err) != realize.NotExist {
		return key, err
	}
	if err == nil && id.ID() == key {
		return key, &realize.Error{Op: op, Kind: realize.Invalid,
			Err: errors.New("that is this peer's own key; give the key `realize id` prints on the other machine")}
	}
	return key, nil
}

func peerRemoveCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "remove",
		Usage:     "remove a peer from the household",
		ArgsUsage: "NAME",
		Description: "Deletes that peer's [[peer]] table from the config, and nothing else. Refuses\n" +
			"while an arena's peers list names it: edit those lists first.",
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.Args().Len() != 1 {
				return usagef("peer remove: want one NAME, got %d arguments", cmd.Args().Len())
			}
			name := cmd.Args().First()
			cfg, err := loadConfig(cmd, e)
			if err != nil {
				return err
			}
			gone, _ := cfg.Peer(name) // nil if unknown: RemovePeer says so
			if cfg, err = config.RemovePeer(cfg.File, name); err != nil {
				return err
			}
			return printPeerEdit(newPrinter(cmd, e), "Removed", "from", *gone, cfg.File)
		},
	}
}

func printPeerEdit(p *printer, did, prep string, pc config.Peer, file string) error {
	if p.json {
		return p.JSON(struct {
			peerJSON
			Config string `json:"config"`
		}{toPeerJSON(pc), file})
	}
	reach := "deaf"
	if pc.Address != "" {
		reach = "address " + pc.Address
	}
	p.Printf("%s peer %q (key %s…, %s) %s %s.\n", did, pc.Name, pc.Key.Short(), reach, prep, file)
	p.Printf("A running daemon picks the change up without a restart.\n")
	return nil
}
