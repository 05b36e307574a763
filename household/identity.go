package household

import (
	stded25519 "crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cloudflare/circl/sign/ed25519"
	"github.com/realizefs/realize"
)

// KeyFile is the name of the private key file in the data directory.
const KeyFile = "peer.key"

// KeyPath returns where the key of the peer whose data directory is
// dataDir lives.
func KeyPath(dataDir string) string { return filepath.Join(dataDir, KeyFile) }

// Identity is this peer's key pair. It implements realize.Signer; the
// private key never leaves it.
type Identity struct {
	priv ed25519.PrivateKey
	id   realize.PeerID
}

var _ realize.Signer = (*Identity)(nil)

// NewIdentity generates a key pair from rand (crypto/rand.Reader in
// production; a fixed stream in tests).
func NewIdentity(rand io.Reader) (*Identity, error) {
	pub, priv, err := ed25519.GenerateKey(rand)
	if err != nil {
		return nil, &realize.Error{Op: "generate key", Kind: realize.IO, Err: err}
	}
	id := &Identity{priv: priv}
	copy(id.id[:], pub)
	return id, nil
}

// ID returns the peer's public key.
func (id *Identity) ID() realize.PeerID { return id.id }

// Sign signs msg with plain Ed25519 (RFC 8032).
func (id *Identity) Sign(msg []byte) ([]byte, error) {
	return ed25519.Sign(id.priv, msg), nil
}

// Verify tells whether sig is peer's Ed25519 signature of msg.
func Verify(peer realize.PeerID, msg, sig []byte) bool {
	if len(sig) != ed25519.SignatureSize {
		return false
	}
	return ed25519.Verify(ed25519.PublicKey(peer[:]), msg, sig)
}

// Save writes the private key to path as a PKCS#8 PEM file of mode 0600. It
// never overwrites: an existing file is an Exist error, since replacing a
// peer's key silently would change its identity in the household.
func (id *Identity) Save(path string) error {
	const op = "save key"
	der, err := x509.MarshalPKCS8PrivateKey(stded25519.PrivateKey(id.priv))
	if err != nil {
		return &realize.Error{Op: op, Kind: realize.Other, Path: path, Err: err}
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return &realize.Error{Op: op, Kind: osKind(err), Path: path, Err: err}
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		os.Remove(path) // a half-written key must not be found next time
		return &realize.Error{Op: op, Kind: realize.IO, Path: path, Err: err}
	}
	return nil
}

// syncDir makes a new directory entry durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// LoadIdentity reads the key at path. Like ssh, it refuses a key file that
// others can read: a leaked key lets anyone impersonate this peer.
func LoadIdentity(path string) (*Identity, error) {
	const op = "load key"
	f, err := os.Open(path)
	if err != nil {
		kind := osKind(err)
		if kind == realize.NotExist {
			err = errors.New("no peer key; create one with `realize init`")
		}
		return nil, &realize.Error{Op: op, Kind: kind, Path: path, Err: err}
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, &realize.Error{Op: op, Kind: realize.IO, Path: path, Err: err}
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, &realize.Error{Op: op, Kind: realize.Permission, Path: path,
			Err: fmt.Errorf("permissions %#o are too open: the key must be readable by its owner only (chmod 600 %s)", perm, path)}
	}
	data, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return nil, &realize.Error{Op: op, Kind: realize.IO, Path: path, Err: err}
	}
	id, err := parseKey(data)
	if err != nil {
		return nil, &realize.Error{Op: op, Kind: realize.Corrupt, Path: path, Err: err}
	}
	return id, nil
}

func parseKey(data []byte) (*Identity, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("not a PEM \"PRIVATE KEY\" file")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	priv, ok := key.(stded25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("a %T key, want ed25519", key)
	}
	id := &Identity{priv: ed25519.NewKeyFromSeed(priv.Seed())}
	copy(id.id[:], priv.Public().(stded25519.PublicKey))
	return id, nil
}

func osKind(err error) realize.ErrKind {
	switch {
	case errors.Is(err, fs.ErrExist):
		return realize.Exist
	case errors.Is(err, fs.ErrNotExist):
		return realize.NotExist
	case errors.Is(err, fs.ErrPermission):
		return realize.Permission
	}
	return realize.IO
}
