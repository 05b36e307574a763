package nfs

import (
	"fmt"
	"testing"
)

// BenchmarkReadDirPlus10k lists a directory of 10k files through the
// server the whole way (go-nfs-client: 4 KiB replies, as many calls as
// that takes), on a fresh mount each time (the client caches listings).
func BenchmarkReadDirPlus10k(b *testing.B) {
	tree := newFakeTree("docs")
	a := tree.arena("docs")
	const n = 10000
	for i := range n {
		a.putFile(fmt.Sprintf("wide/f%05d", i), nil, false)
	}
	r := serve(b, tree, openDB(b))
	for b.Loop() {
		tg, err := mount(b, r.addr, "/")
		if err != nil {
			b.Fatal(err)
		}
		es, err := tg.ReadDirPlus("/docs/wide")
		if err != nil || len(es) != n {
			b.Fatalf("%d entries, %v", len(es), err)
		}
	}
}
