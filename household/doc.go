// Package household is about the other peers: who they are and how to talk
// to them. It will hold the peers of the household, their identities, the
// QUIC transport with pinned ed25519 keys, the wire protocol, reconnection,
// and the serving and fetching of history and blocks.
//
// So far it holds this peer's identity only: the ed25519 key that names the
// peer (its realize.PeerID) and signs its history, stored as a PKCS#8 PEM
// file readable by its owner only.
package household
