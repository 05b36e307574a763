package archtest

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/realizefs/realize"

func TestCheckFindsViolations(t *testing.T) {
	m := func(p string) string {
		if p == Root {
			return module
		}
		return module + "/" + p
	}
	graph := map[string][]string{
		m(Root):                {"fmt"},
		m("history"):           {m(Root), m("internal/store"), "github.com/zeebo/blake3"},
		m("real"):              {m("history"), m("real/chunk")},
		m("real/chunk"):        {m(Root), m("real")},
		m("internal/store"):    {m("history")},         // down imports up
		m("unreal"):            {m("internal/daemon")}, // nothing imports the daemon
		m("household"):         {m("cmd/realize")},     // nothing imports cmd
		m("internal/mystery"):  {m(Root)},              // unlisted package
		m("consensus/rules"):   {m("nfs/handles")},     // subpackages inherit their layer's rule
		m("internal/control"):  {m("internal/config")},
		m("cmd/realize"):       {m("internal/daemon"), m("real"), m("internal/control")},
		m("internal/daemon"):   {m("real"), m("history"), m("internal/control")},
		m("internal/archtest"): nil,
	}
	got := Check(module, Rules(), graph)
	var pairs []string
	for _, v := range got {
		pairs = append(pairs, v.From+" -> "+v.To)
	}
	want := []string{
		"consensus/rules -> nfs/handles",
		"household -> cmd/realize",
		"internal/control -> internal/config",
		"internal/mystery -> .",
		"internal/store -> history",
		"unreal -> internal/daemon",
	}
	sort.Strings(pairs)
	if !reflect.DeepEqual(pairs, want) {
		t.Errorf("violations:\n  %s\nwant:\n  %s", strings.Join(pairs, "\n  "), strings.Join(want, "\n  "))
	}
}

// TestModuleLayering checks the real import graph of the module.
func TestModuleLayering(t *testing.T) {
	root := moduleRoot(t)
	cmd := exec.Command("go", "list", "-e", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", "./...")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	graph := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 0 {
			graph[f[0]] = f[1:]
		}
	}
	if len(graph) < 5 {
		t.Fatalf("go list found only %d packages:\n%s", len(graph), out)
	}
	for _, v := range Check(module, Rules(), graph) {
		t.Error(v)
	}
}

// TestDocMatchesRules keeps docs/architecture.md's table equal to Rules.
func TestDocMatchesRules(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(moduleRoot(t), "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "\n## Allowed imports\n")
	if !ok {
		t.Fatal(`docs/architecture.md has no "## Allowed imports" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	fromDoc := map[string][]string{}
	for _, line := range strings.Split(section, "\n") {
		// | `pkg` | `a`, `b` | why |
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		pkg := strings.Trim(strings.TrimSpace(cells[1]), "`")
		var may []string
		for _, m := range strings.Split(cells[2], ",") {
			if m = strings.Trim(strings.TrimSpace(m), "`"); m != "" && m != "—" {
				may = append(may, m)
			}
		}
		sort.Strings(may)
		fromDoc[pkg] = may
	}
	fromCode := map[string][]string{}
	for _, r := range Rules() {
		may := append([]string(nil), r.May...)
		sort.Strings(may)
		fromCode[r.Pkg] = may
	}
	if !reflect.DeepEqual(fromDoc, fromCode) {
		t.Errorf("docs/architecture.md table differs from archtest.Rules:\ndoc:  %v\ncode: %v", fromDoc, fromCode)
	}
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || len(bytes.TrimSpace(out)) == 0 {
		t.Fatalf("go env GOMOD: %v %q", err, out)
	}
	return filepath.Dir(string(bytes.TrimSpace(out)))
}
