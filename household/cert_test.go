package household

import (
	"bytes"
	"crypto"
	stded25519 "crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	"github.com/realizefs/realize"
)

func TestTLSCertificate(t *testing.T) {
	id, err := NewIdentity(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cert, err := id.TLSCertificate(now)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := id.TLSCertificate(now)
	if !bytes.Equal(cert.Certificate[0], again.Certificate[0]) {
		t.Error("certificate is not deterministic")
	}
	leaf := cert.Leaf
	if err := leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature); err != nil {
		t.Errorf("not validly self-signed: %v", err)
	}
	if !leaf.NotBefore.Before(now) || leaf.NotAfter.Year() != 9999 {
		t.Errorf("validity %v .. %v", leaf.NotBefore, leaf.NotAfter)
	}
	got, err := peerOf(tls.ConnectionState{Version: tls.VersionTLS13, PeerCertificates: []*x509.Certificate{cert.Leaf}})
	if err != nil || got != id.ID() {
		t.Errorf("peerOf = %s, %v; want %s", got.Short(), err, id.ID().Short())
	}
	// The signer signs as the identity does, and only whole messages.
	signer := cert.PrivateKey.(crypto.Signer)
	sig, err := signer.Sign(nil, []byte("m"), crypto.Hash(0))
	if err != nil || !stded25519.Verify(signer.Public().(stded25519.PublicKey), []byte("m"), sig) || !Verify(id.ID(), []byte("m"), sig) {
		t.Errorf("signature does not verify: %v", err)
	}
	digest := sha256.Sum256([]byte("m"))
	if _, err := signer.Sign(nil, digest[:], crypto.SHA256); err == nil {
		t.Error("signed a digest")
	}
}

func TestPeerOfRefuses(t *testing.T) {
	id, _ := NewIdentity(rand.Reader)
	cert, _ := id.TLSCertificate(time.Now())
	two := []*x509.Certificate{cert.Leaf, cert.Leaf}
	for name, cs := range map[string]tls.ConnectionState{
		"TLS 1.2":        {Version: tls.VersionTLS12, PeerCertificates: []*x509.Certificate{cert.Leaf}},
		"no certificate": {Version: tls.VersionTLS13},
		"a chain":        {Version: tls.VersionTLS13, PeerCertificates: two},
	} {
		if _, err := peerOf(cs); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

func TestStatelessResetKeyIsStable(t *testing.T) {
	seed := bytes.NewReader(bytes.Repeat([]byte{3}, 64))
	id, _ := NewIdentity(seed)
	again, _ := NewIdentity(bytes.NewReader(bytes.Repeat([]byte{3}, 64)))
	other, _ := NewIdentity(rand.Reader)
	if *id.statelessResetKey() != *again.statelessResetKey() {
		t.Error("same identity, different keys: a restart could not reset old connections")
	}
	if *id.statelessResetKey() == *other.statelessResetKey() {
		t.Error("two identities share a reset key")
	}
	var zero realize.PeerID
	if bytes.Equal(id.statelessResetKey()[:], zero[:]) {
		t.Error("zero key")
	}
}
