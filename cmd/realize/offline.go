package main

import (
	"context"

	"github.com/realizefs/realize/internal/config"
	"github.com/realizefs/realize/internal/control"
	"github.com/realizefs/realize/internal/daemon"
)

// offlineBackend serves read-only commands (log, log --verify) from the
// data directory's database, opened read-only, when no daemon runs. The
// returned func closes it.
//
// Hook: the lead owns the implementation (daemon.NewOfflineBackend); this
// is the one place the CLI reaches for it.
func offlineBackend(ctx context.Context, cfg *config.Config) (control.Backend, func(), error) {
	return daemon.NewOfflineBackend(ctx, cfg)
}
