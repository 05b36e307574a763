package household

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/realizefs/realize"
)

func TestIdentitySaveLoadSign(t *testing.T) {
	// A fixed random stream makes the key deterministic.
	id, err := NewIdentity(bytes.NewReader(bytes.Repeat([]byte{7}, 64)))
	if err != nil {
		t.Fatal(err)
	}
	again, _ := NewIdentity(bytes.NewReader(bytes.Repeat([]byte{7}, 64)))
	if id.ID() != again.ID() || id.ID().IsZero() {
		t.Fatalf("same seed gave %s and %s", id.ID(), again.ID())
	}
	path := KeyPath(t.TempDir())
	if err := id.Save(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v, want 0600", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(data), "-----BEGIN PRIVATE KEY-----\n") {
		t.Errorf("key file is not PKCS#8 PEM:\n%s", data)
	}
	loaded, err := LoadIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.ID() != id.ID() {
		t.Fatalf("loaded %s, saved %s", loaded.ID(), id.ID())
	}
	msg := []byte("chain head")
	sig, err := loaded.Sign(msg)
	if err != nil {
		t.Fatal(err)
	}
	if !Verify(id.ID(), msg, sig) {
		t.Error("signature does not verify")
	}
	other, _ := NewIdentity(rand.Reader)
	bad := append([]byte(nil), sig...)
	bad[0] ^= 1
	for name, ok := range map[string]bool{
		"other message": Verify(id.ID(), []byte("chain tail"), sig),
		"other peer":    Verify(other.ID(), msg, sig),
		"flipped bit":   Verify(id.ID(), msg, bad),
		"short sig":     Verify(id.ID(), msg, sig[:10]),
	} {
		if ok {
			t.Errorf("%s: verified", name)
		}
	}
}

func TestSaveRefusesOverwrite(t *testing.T) {
	path := KeyPath(t.TempDir())
	a, _ := NewIdentity(rand.Reader)
	b, _ := NewIdentity(rand.Reader)
	if err := a.Save(path); err != nil {
		t.Fatal(err)
	}
	if err := b.Save(path); realize.KindOf(err) != realize.Exist {
		t.Fatalf("second Save: %v, want an Exist error", err)
	}
	if got, err := LoadIdentity(path); err != nil || got.ID() != a.ID() {
		t.Fatalf("key was replaced: %v %v", got, err)
	}
}

func TestLoadRefuses(t *testing.T) {
	dir := t.TempDir()
	good := KeyPath(dir)
	id, _ := NewIdentity(rand.Reader)
	if err := id.Save(good); err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode) // WriteFile's mode is filtered by the umask
		return p
	}
	pem, _ := os.ReadFile(good)
	tests := []struct {
		name string
		path string
		kind realize.ErrKind
		msg  string
	}{
		{"missing", filepath.Join(dir, "none.key"), realize.NotExist, "realize init"},
		{"group readable", write("g.key", pem, 0o640), realize.Permission, "too open"},
		{"world readable", write("w.key", pem, 0o604), realize.Permission, "chmod 600"},
		{"garbage", write("x.key", []byte("hello"), 0o600), realize.Corrupt, "not a PEM"},
		{"bad der", write("d.key", []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600), realize.Corrupt, "load key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadIdentity(tt.path)
			if realize.KindOf(err) != tt.kind || err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("got %v (kind %v), want kind %v mentioning %q", err, realize.KindOf(err), tt.kind, tt.msg)
			}
		})
	}
}
