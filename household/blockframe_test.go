package household

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// TestBlockFrameIsTheCodecs: the hand-built head of a block frame plus its
// data is byte for byte what the codec writes, and the fast parser reads
// back what the codec wrote.
func TestBlockFrameIsTheCodecs(t *testing.T) {
	c := newCodec()
	for _, index := range []int{0, 1, 23, 24, 255, 256, 65535, 65536, 1 << 24} {
		for _, n := range []int{0, 1, 23, 24, 255, 256, 65535, 65536, 1 << 20} {
			data := bytes.Repeat([]byte{byte(index + n)}, n)
			body, err := c.marshal(&BlockFrame{Index: index, Data: data})
			if err != nil {
				t.Fatal(err)
			}
			want, err := c.marshal(responseFrame{Kind: kindData, Body: body})
			if err != nil {
				t.Fatal(err)
			}
			head, size := blockFrameHead(index, n)
			prefix := binary.AppendUvarint(nil, uint64(len(want)))
			if size != len(want) || !bytes.Equal(append(head, data...), append(prefix, want...)) {
				t.Fatalf("index %d, %d bytes: head %x, codec %x", index, n, head, append(prefix, want[:min(len(want), 16)]...))
			}
			i, got, ok := parseBlockFrame(want)
			if !ok || i != index || !bytes.Equal(got, data) {
				t.Fatalf("index %d, %d bytes: parsed %d, %d bytes, ok %v", index, n, i, len(got), ok)
			}
		}
	}
}

// TestParseBlockFrameRefusesOthers: frames that are not exactly a block
// frame in the shortest form are left to the codec.
func TestParseBlockFrameRefusesOthers(t *testing.T) {
	c := newCodec()
	end, _ := c.marshal(responseFrame{Kind: kindEnd})
	for name, b := range map[string][]byte{
		"end":            end,
		"empty":          {},
		"long index":     {0xa2, 0x01, 0x01, 0x02, 0xa2, 0x01, 0x18, 0x05, 0x02, 0x41, 0x00},
		"short data":     {0xa2, 0x01, 0x01, 0x02, 0xa2, 0x01, 0x05, 0x02, 0x42, 0x00},
		"trailing bytes": {0xa2, 0x01, 0x01, 0x02, 0xa2, 0x01, 0x05, 0x02, 0x41, 0x00, 0x00},
		"text data":      {0xa2, 0x01, 0x01, 0x02, 0xa2, 0x01, 0x05, 0x02, 0x61, 0x00},
	} {
		if _, _, ok := parseBlockFrame(b); ok {
			t.Errorf("%s: parsed", name)
		}
	}
}
