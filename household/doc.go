// Package household is about the other peers: who they are and how to talk
// to them. It holds this peer's identity, the QUIC transport with pinned
// ed25519 keys, the wire protocol's framing and request/response layer,
// and on top of it the history exchange and block transfer messages
// (sync.go, sync_client.go, snapshot.go).
//
// Identity is the ed25519 key that names the peer (its realize.PeerID) and
// signs its history, stored as a PKCS#8 PEM file readable by its owner only.
// It also makes the self-signed certificate the peer presents in TLS, and
// signs for it without letting the key out of this package.
//
// Host is the transport: one UDP socket, QUIC with TLS 1.3, and one
// connection per peer, kept up by dialling every peer that has an address
// (with capped, jittered exponential backoff) and accepting the others.
// Both ends of every handshake pin the other's key against the household as
// configured at that moment; keys outside it are refused, and logged, on
// either side. A deaf peer only dials, and its connections serve both ways.
//
// Requests travel on QUIC streams, one stream each, in length-prefixed
// canonical CBOR frames whose size is bounded per message type (Mux). A bad
// frame ends its own stream with an error frame and nothing else. The first
// request each way is Hello, which says which arenas the sender shares;
// handlers of arena data call RequireArena before anything else, since a
// peer must never see an arena that is not shared with it.
//
// docs/protocol.md specifies the wire protocol; this package implements it.
package household
