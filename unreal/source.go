package unreal

import (
	"context"

	"github.com/realizefs/realize"
)

// BlockSource is what fetching needs from the network: who may have a
// blob, its block map, and runs of its blocks. The household implements
// it over QUIC; tests implement it in memory. Every byte it returns is
// untrusted until checked against the block's hash.
type BlockSource interface {
	// Sources lists the peers to ask for blocks of arena, best first.
	Sources(arena realize.ArenaName) []realize.PeerID
	// BlockMap asks peer for a blob's block map.
	BlockMap(ctx context.Context, peer realize.PeerID, arena realize.ArenaName, blob realize.Hash) (realize.BlockMap, error)
	// ReadBlocks asks peer for n blocks of a blob from block index first,
	// calling fn with each block's bytes in order (data is only valid
	// during the call).
	ReadBlocks(ctx context.Context, peer realize.PeerID, arena realize.ArenaName, blob realize.Hash, first, n int, fn func(i int, data []byte) error) error
}
