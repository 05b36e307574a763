package history_test

import (
	"bytes"
	"testing"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/history"
)

func sampleEntry() *realize.Entry {
	return &realize.Entry{
		Seq: 9, Time: 123, Arena: "photos", Peer: realize.PeerID{1}, Origin: realize.PeerID{2},
		Op: realize.OpRename, Path: "a/new name\n.jpg", From: "a/old.jpg",
		Meta:    realize.Meta{Kind: realize.KindFile, Size: 10, MTime: 55, Exec: true, Blob: realize.Hash{7}},
		Version: realize.VersionVector{{1}: 9, {2}: 4, {3}: 1},
		Prev:    realize.Hash{8},
	}
}

func TestCodecRoundTripAndCanonical(t *testing.T) {
	c := history.NewCodec()
	e := sampleEntry()
	a, err := c.Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	// Map iteration order is random: encoding many times must give one result.
	for i := 0; i < 20; i++ {
		b, _ := c.Encode(sampleEntry())
		if !bytes.Equal(a, b) {
			t.Fatal("encoding is not deterministic")
		}
	}
	d, err := c.Decode(a)
	if err != nil {
		t.Fatal(err)
	}
	if d.Path != e.Path || d.From != e.From || d.Meta != e.Meta || d.Version.Compare(e.Version) != realize.Equal || d.Prev != e.Prev || d.Origin != e.Origin {
		t.Fatalf("round trip: got %+v want %+v", d, e)
	}
}

func TestDecodeRejectsEscapes(t *testing.T) {
	c := history.NewCodec()
	for _, p := range []string{"../x", "/etc/passwd", "a/../../b", "a\x00b", "a//b", ".", "a/./b", "bad\xffutf8", ""} {
		e := sampleEntry()
		e.Op, e.From = realize.OpAdd, ""
		e.Path = realize.Path(p) // bypass ParsePath on purpose: this is what a hostile peer sends
		enc, err := c.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Decode(enc); realize.KindOf(err) != realize.Corrupt {
			t.Errorf("path %q: decode err = %v, want corrupt", p, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	c := history.NewCodec()
	enc, _ := c.Encode(sampleEntry())
	f.Add(enc)
	f.Add([]byte{0xa0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := c.Decode(b)
		if err != nil {
			return
		}
		// Anything accepted must be safe to use and must survive a round trip.
		if _, err := realize.ParsePath(string(e.Path)); err != nil {
			t.Fatalf("accepted bad path %q", e.Path)
		}
		again, err := c.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Decode(again); err != nil {
			t.Fatalf("re-encoded entry does not decode: %v", err)
		}
	})
}

func TestCodecConflictEntry(t *testing.T) {
	c := history.NewCodec()
	e := sampleEntry()
	e.Op, e.From = realize.OpConflict, ""
	e.Losers = []realize.Alternative{{Origin: realize.PeerID{4}, Meta: realize.Meta{Kind: realize.KindFile, Size: 3, Blob: realize.Hash{9}},
		Version: realize.VersionVector{{4}: 2, {1}: 1}}}
	enc, err := c.Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Losers) != 1 || d.Losers[0].Meta != e.Losers[0].Meta || d.Losers[0].Version.Compare(e.Losers[0].Version) != realize.Equal {
		t.Fatalf("losers = %+v", d.Losers)
	}
	e.Losers = nil // a conflict without losers is malformed
	enc, _ = c.Encode(e)
	if _, err := c.Decode(enc); realize.KindOf(err) != realize.Corrupt {
		t.Fatalf("conflict without losers: %v", err)
	}
}
