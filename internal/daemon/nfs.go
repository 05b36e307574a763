package daemon

import (
	"context"
	"errors"
	"net"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/nfs"
)

// startNFS serves the share over NFSv3 on the configured loopback
// address, if one is configured. It returns the address served (the port
// is known once listening, which matters when the config asks for :0).
func startNFS(ctx context.Context, d *Daemon, stack *cleanup) (string, error) {
	addr := d.config().NFS
	if addr == "" {
		return "", nil
	}
	srv, err := nfs.New(nfs.Options{Tree: &share{d: d}, DB: d.db, Logger: d.log})
	if err != nil {
		return "", err
	}
	d.nfsSrv = srv // for metrics: set before anything reads it
	d.follow.srv.Store(srv)
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return "", &realize.Error{Op: "listen nfs", Kind: realize.Busy, Path: addr, Err: err}
	}
	ctx, cancel := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	stack.push("stop nfs server", func(context.Context) error {
		cancel()
		if err := <-served; err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
		return nil
	})
	d.log.Info("nfs server listening", "addr", ln.Addr().String())
	return ln.Addr().String(), nil
}
