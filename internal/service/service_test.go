package service

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/realizefs/realize"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the generators")

// specs are the golden cases: fixed paths, so the files are the same on
// every machine.
var specs = map[string]Spec{
	"linux-user": {OS: "linux", Binary: "/usr/local/bin/realize", Config: "/home/ann/.config/realize/config.toml",
		Data: "/home/ann/.local/share/realize", Home: "/home/ann", UID: 1000},
	"linux-system": {OS: "linux", System: true, User: "ann", Binary: "/usr/local/bin/realize",
		Config: "/home/ann/.config/realize/config.toml", Data: "/home/ann/.local/share/realize", UID: 1000},
	"darwin-user": {OS: "darwin", Binary: "/opt/homebrew/bin/realize",
		Config: "/Users/ann/Library/Application Support/realize/config.toml",
		Data:   "/Users/ann/Library/Application Support/realize", Home: "/Users/ann", UID: 501},
	"darwin-system": {OS: "darwin", System: true, User: "ann", Binary: "/opt/homebrew/bin/realize",
		Config: "/Users/ann/Library/Application Support/realize/config.toml",
		Data:   "/Users/ann/Library/Application Support/realize", UID: 501},
}

// render is a golden file: the plan's path, commands and file.
func render(p *Plan) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# manager: %s, scope: %s\n# path: %s\n# install: %s\n# uninstall: %s\n# status: %s\n# logs: %s\n",
		p.Manager, p.Scope, p.Path, ShellLine(p.Install), ShellLine(p.UninstallCommands()), ShellList(p.Status), p.Logs)
	b.Write(p.Content)
	return b.Bytes()
}

func TestGolden(t *testing.T) {
	for name, s := range specs {
		t.Run(name, func(t *testing.T) {
			p, err := New(s)
			if err != nil {
				t.Fatal(err)
			}
			got := render(p)
			file := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(file, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (run `go test ./internal/service -update` to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs (run with -update if the change is intended):\n--- got\n%s\n--- want\n%s", file, got, want)
			}
		})
	}
}

func TestUnitContent(t *testing.T) {
	user, _ := New(specs["linux-user"])
	sys, _ := New(specs["linux-system"])
	u, s := string(user.Content), string(sys.Content)
	for _, want := range []string{
		"ExecStart=/usr/local/bin/realize --config /home/ann/.config/realize/config.toml daemon\n",
		"Restart=on-failure\n", "After=network-online.target\n", "NoNewPrivileges=true\n",
	} {
		if !strings.Contains(u, want) || !strings.Contains(s, want) {
			t.Errorf("units lack %q", want)
		}
	}
	for _, bad := range []string{"ProtectHome", "ProtectSystem", "PrivateTmp", "ExecStop"} {
		if strings.Contains(u, bad) || strings.Contains(s, bad) {
			t.Errorf("a unit has %s", bad)
		}
	}
	if strings.Contains(u, "User=") || !strings.Contains(s, "User=ann\n") {
		t.Error("User= belongs in the system unit only")
	}
	if !strings.Contains(u, "WantedBy=default.target") || !strings.Contains(s, "WantedBy=multi-user.target") {
		t.Error("WantedBy")
	}
	root := specs["linux-system"]
	root.User = ""
	rp, _ := New(root)
	if strings.Contains(string(rp.Content), "User=") {
		t.Error("a root system unit has User=")
	}
}

func TestUnitQuoting(t *testing.T) {
	s := specs["linux-user"]
	s.Config = `/home/ann/my "conf" 100%/$HOME\x.toml`
	u, err := Unit(s)
	if err != nil {
		t.Fatal(err)
	}
	want := `ExecStart=/usr/local/bin/realize --config "/home/ann/my \"conf\" 100%%/$$HOME\\x.toml" daemon` + "\n"
	if !strings.Contains(string(u), want) {
		t.Errorf("unit:\n%s\nwant line %s", u, want)
	}
}

func TestBadSpec(t *testing.T) {
	for name, mod := range map[string]func(*Spec){
		"relative binary": func(s *Spec) { s.Binary = "realize" },
		"relative config": func(s *Spec) { s.Config = "c.toml" },
		"newline":         func(s *Spec) { s.Data = "/a\nb" },
		"no home":         func(s *Spec) { s.Home = "" },
		"odd user":        func(s *Spec) { s.User = "a b" },
	} {
		s := specs["linux-user"]
		mod(&s)
		if _, err := New(s); realize.KindOf(err) != realize.Invalid {
			t.Errorf("%s: %v, want an invalid error", name, err)
		}
	}
	s := specs["linux-user"]
	s.OS = "plan9"
	if _, err := New(s); realize.KindOf(err) != realize.Unsupported {
		t.Errorf("plan9: %v", err)
	}
}

// TestSystemdAnalyzeVerify runs systemd's own checker on both units.
func TestSystemdAnalyzeVerify(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (Debian package systemd): unit files not verified by systemd")
	}
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	// ExecStart must name an executable that exists, and User= one that
	// exists and is not "nobody".
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"linux-user", "linux-system", "quoted"} {
		s := specs[name]
		if name == "quoted" {
			s = specs["linux-user"]
			s.Config = `/home/ann/my "conf" 100%/$HOME\x.toml`
		}
		s.Binary = bin
		if s.System {
			s.User = me.Username
		}
		u, err := Unit(s)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		file := filepath.Join(dir, UnitName)
		if err := os.WriteFile(file, u, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(sa, "verify", "--man=no", file).CombinedOutput()
		// verify exits 0 on warnings (an unknown key is "ignoring"): any
		// output is a failure.
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("%s: systemd-analyze verify: %v\n%s\n%s", name, err, out, u)
		}
	}
}

// plistValue decodes a property list value into Go: string, bool, int64
// (as its text), []any, map[string]any.
func plistValue(d *xml.Decoder, start xml.StartElement) (any, error) {
	switch start.Name.Local {
	case "true", "false":
		return start.Name.Local == "true", d.Skip()
	case "string", "integer":
		var s string
		err := d.DecodeElement(&s, &start)
		return s, err
	case "array", "dict":
		var arr []any
		m := map[string]any{}
		key := ""
		for {
			tok, err := d.Token()
			if err != nil {
				return nil, err
			}
			switch tok := tok.(type) {
			case xml.EndElement:
				if start.Name.Local == "array" {
					return arr, nil
				}
				return m, nil
			case xml.StartElement:
				if tok.Name.Local == "key" {
					if err := d.DecodeElement(&key, &tok); err != nil {
						return nil, err
					}
					continue
				}
				v, err := plistValue(d, tok)
				if err != nil {
					return nil, err
				}
				if start.Name.Local == "array" {
					arr = append(arr, v)
				} else {
					if _, dup := m[key]; dup || key == "" {
						return nil, fmt.Errorf("key %q missing or repeated", key)
					}
					m[key], key = v, ""
				}
			}
		}
	}
	return nil, fmt.Errorf("unexpected element <%s>", start.Name.Local)
}

func parsePlist(doc []byte) (map[string]any, error) {
	d := xml.NewDecoder(bytes.NewReader(doc))
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, err
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "plist" {
			for {
				tok, err := d.Token()
				if err != nil {
					return nil, err
				}
				if se, ok := tok.(xml.StartElement); ok {
					v, err := plistValue(d, se)
					if err != nil {
						return nil, err
					}
					m, ok := v.(map[string]any)
					if !ok {
						return nil, errors.New("top level is not a dict")
					}
					// Nothing but the end may follow.
					for {
						tok, err := d.Token()
						if err == io.EOF {
							return m, nil
						}
						if err != nil {
							return nil, err
						}
						if _, ok := tok.(xml.StartElement); ok {
							return nil, errors.New("more than one top-level value")
						}
					}
				}
			}
		}
	}
}

func TestPlistParsesBack(t *testing.T) {
	s := specs["darwin-user"]
	s.Config = `/Users/ann/<odd> & "quoted".toml` // escaping
	doc, err := Plist(s)
	if err != nil {
		t.Fatal(err)
	}
	m, err := parsePlist(doc)
	if err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
	want := map[string]any{
		"Label":             Label,
		"ProgramArguments":  []any{s.Binary, "--config", s.Config, "daemon"},
		"RunAtLoad":         true,
		"KeepAlive":         map[string]any{"SuccessfulExit": false},
		"ThrottleInterval":  "10",
		"StandardOutPath":   "/Users/ann/Library/Application Support/realize/logs/daemon.log",
		"StandardErrorPath": "/Users/ann/Library/Application Support/realize/logs/daemon.log",
	}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("plist:\n%#v\nwant\n%#v", m, want)
	}
	sys, _ := Plist(specs["darwin-system"])
	m, err = parsePlist(sys)
	if err != nil || m["UserName"] != "ann" {
		t.Errorf("system plist: UserName %v, %v", m["UserName"], err)
	}
	if plutil, err := exec.LookPath("plutil"); err == nil { // macOS
		f := filepath.Join(t.TempDir(), "p.plist")
		os.WriteFile(f, doc, 0o644)
		if out, err := exec.Command(plutil, "-lint", f).CombinedOutput(); err != nil {
			t.Errorf("plutil -lint: %v\n%s", err, out)
		}
	}
}

// fakeRunner records commands; fail makes a command (by its Shell form)
// fail with that output; missing hides every command.
type fakeRunner struct {
	ran     []string
	fail    map[string]string
	outputs map[string]string
	missing bool
}

func (f *fakeRunner) LookPath(name string) (string, error) {
	if f.missing {
		return "", exec.ErrNotFound
	}
	return "/usr/bin/" + name, nil
}

func (f *fakeRunner) Run(_ context.Context, argv []string) ([]byte, error) {
	line := Shell(argv)
	f.ran = append(f.ran, line)
	if out, ok := f.fail[line]; ok {
		return []byte(out), errors.New("exit status 1")
	}
	return []byte(f.outputs[line]), nil
}

func homeSpec(t *testing.T, os string) Spec {
	home := t.TempDir()
	return Spec{OS: os, Binary: "/usr/local/bin/realize", Config: filepath.Join(home, "c.toml"),
		Data: filepath.Join(home, "data"), Home: home, UID: 1000}
}

func TestInstallUninstallSystemdUser(t *testing.T) {
	ctx := t.Context()
	s := homeSpec(t, "linux")
	p, _ := New(s)
	r := &fakeRunner{}
	res, err := Install(ctx, p, r, false)
	if err != nil || res.Action != Written {
		t.Fatalf("install: %+v %v", res, err)
	}
	wantPath := filepath.Join(s.Home, ".config/systemd/user/realize.service")
	got, err := os.ReadFile(wantPath)
	if p.Path != wantPath || err != nil || !bytes.Equal(got, p.Content) {
		t.Fatalf("file at %s: %v", wantPath, err)
	}
	if fi, _ := os.Stat(wantPath); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", fi.Mode())
	}
	wantRan := []string{"systemctl --user daemon-reload", "systemctl --user enable --now realize.service"}
	if !reflect.DeepEqual(r.ran, wantRan) {
		t.Errorf("ran %q", r.ran)
	}
	if ents, _ := os.ReadDir(filepath.Dir(wantPath)); len(ents) != 1 {
		t.Errorf("leftover temporary files: %v", ents)
	}

	// Again: unchanged, enabled again, not restarted.
	r.ran = nil
	if res, err := Install(ctx, p, r, false); err != nil || res.Action != Unchanged || !reflect.DeepEqual(r.ran, wantRan) {
		t.Errorf("second install: %+v %v %q", res, err, r.ran)
	}

	// A different file is kept unless forced; forced, the service restarts.
	s2 := s
	s2.Binary = "/opt/realize/bin/realize"
	p2, _ := New(s2)
	r.ran = nil
	if _, err := Install(ctx, p2, r, false); realize.KindOf(err) != realize.Exist || !strings.Contains(err.Error(), "--force") {
		t.Errorf("install over a different file: %v", err)
	}
	if got, _ := os.ReadFile(wantPath); !bytes.Equal(got, p.Content) || len(r.ran) != 0 {
		t.Error("a refused install changed the file or ran something")
	}
	if res, err := Install(ctx, p2, r, true); err != nil || res.Action != Replaced ||
		!reflect.DeepEqual(r.ran, append(wantRan, "systemctl --user try-restart realize.service")) {
		t.Errorf("forced install: %+v %v %q", res, err, r.ran)
	}

	// Status.
	r.outputs = map[string]string{"systemctl --user is-enabled realize.service": "enabled\n",
		"systemctl --user is-active realize.service": "active\n"}
	st := Query(ctx, p2, r)
	if !st.Installed || !st.Current || st.Enabled != "enabled" || st.Active != "active" {
		t.Errorf("status %+v", st)
	}
	if st := Query(ctx, p, r); st.Current {
		t.Error("status calls an outdated file current")
	}

	r.ran = nil
	res, err = Uninstall(ctx, p2, r, false)
	if err != nil || res.Action != Removed {
		t.Fatalf("uninstall: %+v %v", res, err)
	}
	if !reflect.DeepEqual(r.ran, []string{"systemctl --user disable --now realize.service", "systemctl --user daemon-reload"}) {
		t.Errorf("uninstall ran %q", r.ran)
	}
	if _, err := os.Stat(wantPath); !errors.Is(err, os.ErrNotExist) {
		t.Error("uninstall left the file")
	}
	r.ran = nil
	if res, err := Uninstall(ctx, p2, r, false); err != nil || res.Action != Absent || len(r.ran) != 0 {
		t.Errorf("second uninstall: %+v %v %q", res, err, r.ran)
	}
	r.outputs = map[string]string{"systemctl --user is-enabled realize.service": "Failed to connect to bus: No medium found"}
	if st := Query(ctx, p2, r); st.Installed || st.Enabled != "unknown" || !strings.Contains(st.Note, "Failed to connect") {
		t.Errorf("status after uninstall: %+v", st)
	}
}

func TestInstallWithoutManager(t *testing.T) {
	p, _ := New(homeSpec(t, "linux"))
	r := &fakeRunner{missing: true}
	res, err := Install(t.Context(), p, r, false)
	if realize.KindOf(err) != realize.Unavailable || res == nil || res.Action != Written {
		t.Fatalf("%+v %v", res, err)
	}
	for _, want := range []string{"wrote " + p.Path, "systemctl is not on PATH",
		"systemctl --user daemon-reload && systemctl --user enable --now realize.service"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if _, err := os.Stat(p.Path); err != nil {
		t.Error("file not written")
	}
	if st := Query(t.Context(), p, r); !st.Installed || st.Enabled != "unknown" || st.Note == "" {
		t.Errorf("status: %+v", st)
	}
	// Uninstall still removes the file.
	if res, err := Uninstall(t.Context(), p, r, false); err != nil || res.Action != Removed || len(r.ran) != 0 {
		t.Errorf("uninstall: %+v %v %q", res, err, r.ran)
	}
}

func TestInstallCommandFails(t *testing.T) {
	p, _ := New(homeSpec(t, "linux"))
	r := &fakeRunner{fail: map[string]string{"systemctl --user daemon-reload": "Failed to connect to bus: No medium found"}}
	_, err := Install(t.Context(), p, r, false)
	if err == nil || !strings.Contains(err.Error(), "Failed to connect to bus") ||
		!strings.Contains(err.Error(), "systemctl --user daemon-reload && systemctl --user enable --now realize.service") {
		t.Fatalf("%v", err)
	}
	// Uninstall refuses to remove the file of a service it could not stop.
	r.fail = map[string]string{"systemctl --user disable --now realize.service": "Failed to connect to bus"}
	if _, err := Uninstall(t.Context(), p, r, false); err == nil || !strings.Contains(err.Error(), "left in place") {
		t.Errorf("uninstall: %v", err)
	}
	if _, err := os.Stat(p.Path); err != nil {
		t.Error("file removed although the service was not stopped")
	}
	if res, err := Uninstall(t.Context(), p, r, true); err != nil || res.Action != Removed || len(res.Failed) != 1 {
		t.Errorf("forced uninstall: %+v %v", res, err)
	}
}

func TestInstallUninstallLaunchd(t *testing.T) {
	ctx := t.Context()
	s := homeSpec(t, "darwin")
	p, _ := New(s)
	wantPath := filepath.Join(s.Home, "Library/LaunchAgents/net.realize.daemon.plist")
	r := &fakeRunner{}
	if res, err := Install(ctx, p, r, false); err != nil || res.Action != Written || p.Path != wantPath {
		t.Fatalf("install: %+v %v", res, err)
	}
	if !reflect.DeepEqual(r.ran, []string{"launchctl bootstrap gui/1000 " + wantPath}) {
		t.Errorf("ran %q", r.ran)
	}
	if fi, err := os.Stat(filepath.Join(s.Data, "logs")); err != nil || !fi.IsDir() {
		t.Errorf("log directory: %v", err)
	}
	// Again: unloaded first (allowed to fail), then loaded.
	r.ran = nil
	r.fail = map[string]string{"launchctl bootout gui/1000/net.realize.daemon": "Boot-out failed: 3: No such process"}
	if res, err := Install(ctx, p, r, false); err != nil || res.Action != Unchanged ||
		!reflect.DeepEqual(r.ran, []string{"launchctl bootout gui/1000/net.realize.daemon", "launchctl bootstrap gui/1000 " + wantPath}) {
		t.Errorf("second install: %+v %v %q", res, err, r.ran)
	}

	r.fail = nil
	r.outputs = map[string]string{
		"launchctl print gui/1000/net.realize.daemon": "gui/1000/net.realize.daemon = {\n\tactive count = 1\n\tstate = running\n}\n",
		"launchctl print-disabled gui/1000":           "disabled services = {\n\t\"com.other\" => disabled\n}\n",
	}
	if st := Query(ctx, p, r); !st.Installed || !st.Current || st.Enabled != "enabled" || st.Active != "running" {
		t.Errorf("status %+v", st)
	}
	r.outputs["launchctl print-disabled gui/1000"] = "\t\"net.realize.daemon\" => disabled\n"
	if st := Query(ctx, p, r); st.Enabled != "disabled" {
		t.Errorf("status %+v", st)
	}

	r.ran = nil
	if res, err := Uninstall(ctx, p, r, false); err != nil || res.Action != Removed ||
		!reflect.DeepEqual(r.ran, []string{"launchctl print gui/1000/net.realize.daemon", "launchctl bootout gui/1000/net.realize.daemon"}) {
		t.Errorf("uninstall: %+v %v %q", res, err, r.ran)
	}
	if _, err := os.Stat(wantPath); !errors.Is(err, os.ErrNotExist) {
		t.Error("plist left")
	}

	// Not loaded: no bootout, the file still goes.
	Install(ctx, p, r, false)
	r.ran = nil
	r.fail = map[string]string{"launchctl print gui/1000/net.realize.daemon": "Could not find service"}
	r.outputs = nil
	if res, err := Uninstall(ctx, p, r, false); err != nil || res.Action != Removed || len(r.ran) != 1 {
		t.Errorf("uninstall of an unloaded job: %+v %v %q", res, err, r.ran)
	}
	if st := Query(ctx, p, r); st.Installed || st.Enabled != "not loaded" {
		t.Errorf("status %+v", st)
	}
}

func TestInstallUnwritable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root writes anywhere")
	}
	s := homeSpec(t, "linux")
	os.Chmod(s.Home, 0o500)
	t.Cleanup(func() { os.Chmod(s.Home, 0o700) })
	p, _ := New(s)
	if _, err := Install(t.Context(), p, &fakeRunner{}, false); realize.KindOf(err) != realize.Permission {
		t.Errorf("%v", err)
	}
}
