// Package archtest keeps the module's layering honest: a table of which
// package may import which (the same table as docs/architecture.md), and a
// checker that holds an import graph against it. Its test runs the checker
// on the real module, so an import that points the wrong way fails `go
// test ./...` rather than waiting for a reviewer to notice.
package archtest

import (
	"fmt"
	"sort"
	"strings"
)

// Root names the module's root package (the core vocabulary) in rules.
const Root = "."

// Rule says which module packages Pkg may import. Pkg and May are
// module-relative ("history", "internal/store"; Root for the root package).
// A package below Pkg (real/chunk under real) has Pkg's rule and may also
// import Pkg and its siblings: a layer may split itself into subpackages.
type Rule struct {
	Pkg string
	May []string
}

// Rules is the layering of Realize, bottom to top. Keep it equal to the
// table in docs/architecture.md (a test compares them).
func Rules() []Rule {
	// core is what every layer from unreal up may use.
	core := func(more ...string) []string {
		return append([]string{Root, "internal/store", "internal/config"}, more...)
	}
	return []Rule{
		{Root, nil},
		{"internal/store", []string{Root}},
		{"internal/control", []string{Root}},
		{"internal/config", []string{Root}},
		{"internal/service", []string{Root}},
		{"history", []string{Root, "internal/store"}},
		{"real", []string{Root, "internal/store", "history"}},
		{"unreal", core("history", "real")},
		{"household", core("history", "real", "unreal")},
		{"consensus", core("history", "real", "unreal", "household")},
		{"nfs", core("history", "real", "unreal", "household", "consensus")},
		{"internal/daemon", core("internal/control", "history", "real", "unreal", "household", "consensus", "nfs")},
		{"internal/bench", core("history", "real", "unreal", "household", "consensus", "nfs")},
		{"internal/e2e", nil},
		{"internal/harness", core("history", "real", "unreal", "household", "consensus")},
		{"internal/archtest", nil},
		{"internal/libnfstest", nil},
		{"cmd/realize", core("internal/control", "internal/service", "internal/daemon", "history", "real", "unreal", "household", "consensus", "nfs")},
	}
}

// Violation is one import the rules do not allow.
type Violation struct {
	From, To string // module-relative
	Why      string
}

func (v Violation) String() string { return fmt.Sprintf("%s imports %s: %s", v.From, v.To, v.Why) }

// Check returns every import in graph (import path -> its imports, as `go
// list` reports them) between packages of module that rules do not allow.
// Imports from outside the module are not its business.
func Check(module string, rules []Rule, graph map[string][]string) []Violation {
	byPkg := make(map[string]Rule, len(rules))
	for _, r := range rules {
		byPkg[r.Pkg] = r
	}
	var out []Violation
	for from, imports := range graph {
		rel, ok := relative(module, from)
		if !ok {
			continue
		}
		layer, found := layerOf(rel, byPkg)
		for _, to := range imports {
			toRel, ok := relative(module, to)
			if !ok {
				continue
			}
			if !found {
				out = append(out, Violation{rel, toRel, "package is not in the layer table (add it to archtest.Rules and docs/architecture.md)"})
				continue
			}
			toLayer, _ := layerOf(toRel, byPkg)
			if toLayer == layer || allowed(byPkg[layer].May, toLayer) {
				continue
			}
			out = append(out, Violation{rel, toRel, fmt.Sprintf("layer %s may import only %s", layer, list(byPkg[layer].May))})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// relative returns path relative to module, Root for the module itself.
func relative(module, path string) (string, bool) {
	if path == module {
		return Root, true
	}
	rest, ok := strings.CutPrefix(path, module+"/")
	return rest, ok
}

// layerOf returns the rule's package that rel falls under: itself, or its
// closest listed ancestor.
func layerOf(rel string, byPkg map[string]Rule) (string, bool) {
	for p := rel; ; {
		if _, ok := byPkg[p]; ok {
			return p, true
		}
		i := strings.LastIndexByte(p, '/')
		if i < 0 {
			return rel, false
		}
		p = p[:i]
	}
}

func allowed(may []string, layer string) bool {
	for _, m := range may {
		if m == layer {
			return true
		}
	}
	return false
}

func list(may []string) string {
	if len(may) == 0 {
		return "nothing of the module"
	}
	return strings.Join(may, ", ")
}
