package household

import (
	"crypto"
	stded25519 "crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"time"

	"github.com/cloudflare/circl/sign/ed25519"
	"github.com/quic-go/quic-go"
	"github.com/realizefs/realize"
	"github.com/zeebo/blake3"
)

// TLSCertificate returns a self-signed X.509 certificate for this peer's
// key, to present in the TLS handshakes of the household transport. Its
// signer signs through the Identity: the private key stays inside this
// package. The certificate carries nothing peers rely on but the public
// key, which they pin; now only dates it.
func (id *Identity) TLSCertificate(now time.Time) (tls.Certificate, error) {
	const op = "make certificate"
	signer := keySigner{priv: id.priv}
	// A serial derived from key and time keeps the function deterministic.
	var serial [16]byte
	h := blake3.New()
	h.Write(id.id[:])
	h.Write([]byte(now.UTC().Format(time.RFC3339Nano)))
	h.Digest().Read(serial[:])
	serial[0] &= 0x7f // positive, as RFC 5280 wants
	tmpl := &x509.Certificate{
		SerialNumber: new(big.Int).SetBytes(serial[:]),
		Subject:      pkix.Name{CommonName: "realize " + id.id.String()},
		NotBefore:    now.Add(-time.Hour).UTC(), // tolerate skewed peer clocks
		// RFC 5280's "no well-defined expiration date": peers pin keys, not
		// certificates, so there is nothing for a certificate to expire for.
		NotAfter:    time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(zeroReader{}, tmpl, tmpl, signer.Public(), signer)
	if err != nil {
		return tls.Certificate{}, &realize.Error{Op: op, Kind: realize.Other, Err: err}
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, &realize.Error{Op: op, Kind: realize.Other, Err: err}
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: signer, Leaf: leaf}, nil
}

// keySigner lets crypto/tls and crypto/x509 sign with the identity key
// without holding it in a type they (or anyone outside this package) could
// take apart.
type keySigner struct{ priv ed25519.PrivateKey }

func (s keySigner) Public() crypto.PublicKey {
	return stded25519.PublicKey(s.priv.Public().(ed25519.PublicKey))
}

// Sign makes a pure Ed25519 signature; Ed25519 hashes internally, so a
// pre-hashed digest would be a misuse.
func (s keySigner) Sign(_ io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts != nil && opts.HashFunc() != 0 {
		return nil, errors.New("ed25519 signs messages, not digests")
	}
	return ed25519.Sign(s.priv, msg), nil
}

// zeroReader stands in for randomness where none is used (Ed25519 signing
// is deterministic), keeping certificates reproducible.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// statelessResetKey derives the QUIC stateless-reset key from the identity.
// The same key after a restart lets this peer's new process reset the
// connections its old one held, so the other side notices at its next
// packet instead of at the idle timeout.
func (id *Identity) statelessResetKey() *quic.StatelessResetKey {
	var k quic.StatelessResetKey
	blake3.DeriveKey("realize 2025 quic stateless reset key", id.priv.Seed(), k[:])
	return &k
}

// peerOf returns the key a handshake's peer proved it holds. TLS 1.3 has
// already checked the CertificateVerify signature against the leaf's key
// (crypto/tls does so even with InsecureSkipVerify), so the key is the
// identity; the rest of the certificate, validity dates included, is
// deliberately ignored: pinning replaces a CA.
func peerOf(cs tls.ConnectionState) (realize.PeerID, error) {
	var id realize.PeerID
	if cs.Version != tls.VersionTLS13 {
		return id, fmt.Errorf("TLS version %#x, want 1.3", cs.Version)
	}
	if len(cs.PeerCertificates) != 1 {
		return id, fmt.Errorf("%d certificates, want exactly 1", len(cs.PeerCertificates))
	}
	pub, ok := cs.PeerCertificates[0].PublicKey.(stded25519.PublicKey)
	if !ok || len(pub) != len(id) {
		return id, fmt.Errorf("a %T key, want ed25519", cs.PeerCertificates[0].PublicKey)
	}
	copy(id[:], pub)
	return id, nil
}
