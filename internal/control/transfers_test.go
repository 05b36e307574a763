package control

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/realizefs/realize"
)

// transfersBackend reports transfers in its status.
type transfersBackend struct {
	fakeBackend
	rep *StatusReport
}

func (b *transfersBackend) Status(context.Context) (*StatusReport, error) { return b.rep, nil }

func TestStatusTransfersRoundTrip(t *testing.T) {
	peer := realize.PeerID{7}
	blob := realize.Hash{9}
	started := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	rep := &StatusReport{Daemon: DaemonStatus{Running: true}, Arenas: []ArenaStatus{}, Peers: []PeerStatus{},
		Metrics: "127.0.0.1:7743",
		Transfers: []TransferStatus{
			{Kind: TransferSync, Arena: "docs", Path: "a/b.txt", Peer: &peer, PeerName: "nas", Bytes: 10, BytesDone: 4, Rate: 2, Started: started},
			{Kind: TransferPin, Arena: "docs", Path: "a", Current: "a/c.txt", Files: 3, FilesDone: 1, Bytes: 30, BytesDone: 12, Started: started},
			{Kind: TransferRead, Arena: "docs", Blob: &blob, BytesDone: 5, Rate: 5, Started: started},
		}}
	c, _ := serve(t, &transfersBackend{fakeBackend: fakeBackend{failAt: -1}, rep: rep})
	got, err := c.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Transfers, rep.Transfers) || got.Metrics != rep.Metrics {
		t.Errorf("round trip:\n got %+v\nwant %+v", got.Transfers, rep.Transfers)
	}
	// The field names are a contract for scripts (add-only).
	b, _ := json.Marshal(rep.Transfers[0])
	for _, k := range []string{`"kind":"sync"`, `"arena":"docs"`, `"path":"a/b.txt"`, `"peer":"07`, `"peer_name":"nas"`,
		`"bytes":10`, `"bytes_done":4`, `"rate":2`, `"started":"2026-01-02T03:04:05Z"`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("%s lacks %s", b, k)
		}
	}
	// No transfers is an empty array, not null or absent.
	b, _ = json.Marshal(&StatusReport{Transfers: []TransferStatus{}})
	if !strings.Contains(string(b), `"transfers":[]`) {
		t.Errorf("empty transfers: %s", b)
	}
}
