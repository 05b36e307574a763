package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestAppendWhilePinUnpin: a process appends to a file held open on B
// while pin and unpin of it loop; every byte stays on B and reaches A
// (unpin refuses an open file).
func TestAppendWhilePinUnpin(t *testing.T) {
	a := newPeerWith(t, "alpha", freeAddr(t), "", true)
	b := newPeerWith(t, "bravo", freeAddr(t), "", false)
	introduce(a, b)
	introduce(b, a)
	a.start()
	b.start()
	var content []byte
	done, stopped := make(chan bool), make(chan bool)
	go func() {
		defer close(stopped)
		for {
			select {
			case <-done:
				return
			default:
			}
			b.run("unpin", "home:w.txt")
			b.run("pin", "home:w.txt")
		}
	}()
	f, _ := os.OpenFile(filepath.Join(b.arena, "w.txt"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	for i := 0; i < 300; i++ {
		line := []byte(fmt.Sprintf("line %d\n", i))
		content = append(content, line...)
		f.Write(line)
		time.Sleep(10 * time.Millisecond)
	}
	f.Close()
	close(done)
	<-stopped
	waitFile(t, b, "w.txt", content, 10*time.Second)
	waitFile(t, a, "w.txt", content, 60*time.Second)
}
