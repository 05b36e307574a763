package main

import (
	"context"
	"text/tabwriter"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/internal/config"
	"github.com/urfave/cli/v3"
)

func peerCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "peer",
		Usage: "add, list or remove the other peers of the household",
		Description: "add and remove edit the config file in place: comments and layout are kept,\n" +
			"and the file is only replaced by one that loads. A running daemon picks the\n" +
			"change up without a restart. They work without a running daemon.",
		Commands: []*cli.Command{peerAddCommand(e), peerListCommand(e), peerRemoveCommand(e)},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.Args().Present() {
				return usagef("peer: unknown command %q: want add, list or remove", cmd.Args().First())
			}
			_ = cli.ShowSubcommandHelp(cmd)
			return usagef("peer: want add, list or remove")
		},
	}
}

// peerJSON is a peer as --json prints it: scripts rely on these names.
type peerJSON struct {
	Name    string         `json:"name"`
	Key     realize.PeerID `json:"key"`
	Address string         `json:"address"` // "" = deaf
}

func toPeerJSON(p config.Peer) peerJSON {
	return peerJSON{Name: p.Name, Key: p.Key, Address: p.Address}
}

func peerListCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "list",
		Usage: "list the other peers of the household, as the config has them",
		Description: "Prints each peer's name, short key and address, or (deaf) for a peer that\n" +
			"only dials in. With --json: an array of {name, key, address}.",
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if err := noArgs(cmd); err != nil {
				return err
			}
			cfg, err := loadConfig(cmd, e)
			if err != nil {
				return err
			}
			return printPeers(newPrinter(cmd, e), cfg.Peers)
		},
	}
}

func printPeers(p *printer, peers []config.Peer) error {
	if p.json {
		out := make([]peerJSON, 0, len(peers))
		for _, pc := range peers {
			out = append(out, toPeerJSON(pc))
		}
		return p.JSON(out)
	}
	if len(peers) == 0 {
		p.Printf("No peers yet: add one with `realize peer add NAME KEY [HOST:PORT]`.\n")
		return nil
	}
	tw := tabwriter.NewWriter(p.w, 0, 0, 2, ' ', 0)
	tw.Write([]byte("NAME\tKEY\tADDRESS\n"))
	for _, pc := range peers {
		tw.Write([]byte(pc.Name + "\t" + pc.Key.Short() + "…\t" + addressText(pc.Address) + "\n"))
	}
	return tw.Flush()
}

func addressText(a string) string {
	if a == "" {
		return "(deaf)"
	}
	return a
}
