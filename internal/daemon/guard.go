package daemon

import (
	"context"
	"errors"
	"fmt"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/internal/config"
	"github.com/realizefs/realize/internal/control"
	"github.com/realizefs/realize/real"
)

// Approve implements control.Backend: it records deletions held by the
// delete guard (real/guard.go).
func (b *backend) Approve(ctx context.Context, req control.ApproveRequest) (*control.ApproveReport, error) {
	if b.d == nil || b.d.arenas == nil {
		return nil, errOffline("approve")
	}
	return b.d.approve(ctx, req.Arena, req.Reject)
}

func (d *Daemon) approve(ctx context.Context, name realize.ArenaName, reject bool) (*control.ApproveReport, error) {
	rep := &control.ApproveReport{Approved: []control.ApprovedArena{}}
	if name != "" {
		a, err := d.runningArena(name)
		if err != nil {
			return nil, err
		}
		ok, err := d.approveOne(ctx, a, reject)
		if err != nil {
			return nil, err
		}
		rep.Approved = append(rep.Approved, ok)
		return rep, nil
	}
	for _, a := range d.arenas.list {
		if a.Hold() == nil {
			continue
		}
		ok, err := d.approveOne(ctx, a, reject)
		if realize.KindOf(err) == realize.NotExist {
			continue // the files came back meanwhile
		}
		if err != nil {
			return rep, err
		}
		rep.Approved = append(rep.Approved, ok)
	}
	if len(rep.Approved) == 0 {
		op := "approve"
		if reject {
			op = "reject"
		}
		return nil, &realize.Error{Op: op, Kind: realize.NotExist, Err: errors.New("no deletions are held in any arena")}
	}
	return rep, nil
}

// runningArena returns the indexer of a configured arena, or says why
// there is none.
func (d *Daemon) runningArena(name realize.ArenaName) (*real.Arena, error) {
	if _, ok := d.config().Arena(name); !ok {
		return nil, &realize.Error{Op: "approve", Kind: realize.NotExist, Arena: name, Err: errors.New("no such arena in the config")}
	}
	if a := d.arenas.get(name); a != nil {
		return a, nil
	}
	err := errors.New("the arena is not running")
	if why := d.arenas.failed[name]; why != nil {
		err = fmt.Errorf("the arena is not running: %w", why)
	}
	return nil, &realize.Error{Op: "approve", Kind: realize.Unavailable, Arena: name, Err: err}
}

// approveOne records an arena's held deletions, or with reject puts the
// files back (real files as unreal where another peer holds them: the
// same rule as unpin).
func (d *Daemon) approveOne(ctx context.Context, a *real.Arena, reject bool) (control.ApprovedArena, error) {
	out := control.ApprovedArena{Arena: a.Name()}
	var err error
	if reject {
		var kept []real.Kept
		out.Restored, kept, err = a.Reject(ctx, d.allowUnreal)
		for _, k := range kept {
			out.Kept = append(out.Kept, control.PathFailure{Arena: a.Name(), Path: k.Path, Reason: k.Reason})
		}
	} else {
		out.Files, out.Dirs, err = a.Approve(ctx)
	}
	if h := a.Hold(); h != nil {
		out.StillHeld = h.Files + h.Dirs
	}
	return out, err
}

// heldStatus is a stored hold as status shows it.
func heldStatus(h *real.Hold, ac config.Arena) *control.HeldDeletions {
	if h == nil {
		return nil
	}
	sample := h.Sample
	if sample == nil {
		sample = []realize.Path{}
	}
	return &control.HeldDeletions{Since: h.SinceTime().UTC(), Reason: h.Reason, Files: h.Files, Dirs: h.Dirs,
		Percent: h.Percent, Sample: sample, Guard: ac.DeleteGuard}
}
