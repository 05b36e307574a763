package daemon

import "github.com/realizefs/realize/internal/config"

// restartFields names the parts of next that differ from the running
// config and that only a restart applies.
func restartFields(run, next *config.Config) []string {
	var out []string
	check := func(field string, same bool) {
		if !same {
			out = append(out, field)
		}
	}
	check("name", run.Name == next.Name)
	check("data", run.Data == next.Data)
	check("listen", run.Listen == next.Listen)
	check("nfs", run.NFS == next.NFS)
	check("metrics", run.Metrics == next.Metrics)
	check("log.format", run.Log.Format == next.Log.Format)
	check("scan", run.Scan == next.Scan)
	check("cache", run.Cache == next.Cache)
	return append(out, arenaChanges(run.Arenas, next.Arenas)...)
}

// arenaChanges names arenas added, removed, or given another directory or
// pin mark. Their peers lists and delete guards apply live, so they are
// not compared.
func arenaChanges(run, next []config.Arena) []string {
	var out []string
	byName := make(map[string]config.Arena, len(run))
	for _, a := range run {
		byName[string(a.Name)] = a
	}
	for _, n := range next {
		a, ok := byName[string(n.Name)]
		if !ok || a.Dir != n.Dir || a.Pin != n.Pin {
			out = append(out, "arena."+string(n.Name))
		}
		delete(byName, string(n.Name))
	}
	for _, a := range run { // removed ones, in file order
		if _, gone := byName[string(a.Name)]; gone {
			out = append(out, "arena."+string(a.Name))
		}
	}
	return out
}
