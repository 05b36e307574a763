package household

import (
	"context"
	"testing"
	"time"
)

func TestRawThroughput(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	const n = 32 << 20
	bps, err := RawThroughput(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	if bps <= 0 {
		t.Fatalf("throughput %v", bps)
	}
	t.Logf("%.0f MB/s over one stream (%d MiB)", bps/1e6, n>>20)
	if _, err := RawThroughput(ctx, 0); err == nil {
		t.Error("n = 0 accepted")
	}
}

// BenchmarkRawThroughput is the raw QUIC baseline of `make bench`.
func BenchmarkRawThroughput(b *testing.B) {
	const n = 256 << 20
	b.SetBytes(n)
	for b.Loop() {
		if _, err := RawThroughput(b.Context(), n); err != nil {
			b.Fatal(err)
		}
	}
}
