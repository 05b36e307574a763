package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestHeldDeletionsStayLocal: A deletes most of the arena; the deletions
// are held, so B keeps every file, while everything else still flows both
// ways: B's edit of a file A deleted brings it back on A (an edit wins
// over a deletion), and A's new file reaches B. Approving on A then
// deletes the rest on B, and the peers converge.
func TestHeldDeletionsStayLocal(t *testing.T) {
	h := New(t, 2)
	a, b := h.Peers[0], h.Peers[1]
	for i := range 20 {
		write(t, a, fmt.Sprintf("d/f%02d", i), fmt.Sprint("content ", i))
	}
	converge(t, h)
	for i := range 18 {
		if err := os.Remove(filepath.Join(a.Root, fmt.Sprintf("d/f%02d", i))); err != nil {
			t.Fatal(err)
		}
	}
	write(t, b, "d/f00", "edited on b")
	write(t, a, "new.txt", "made on a while holding")
	if err := h.Converge(t.Context(), 20); err != nil {
		t.Fatal(err)
	}
	if hold := a.Arena.Hold(); hold == nil || hold.Files != 18 {
		t.Fatalf("hold on a = %+v, want 18 files", hold)
	}
	for i := 1; i < 20; i++ {
		if _, err := os.Stat(filepath.Join(b.Root, fmt.Sprintf("d/f%02d", i))); err != nil {
			t.Fatalf("b lost a file while a held its deletion: %v", err)
		}
	}
	if got, err := os.ReadFile(filepath.Join(a.Root, "d/f00")); err != nil || string(got) != "edited on b" {
		t.Fatalf("b's edit on a: %q %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(b.Root, "new.txt")); err != nil {
		t.Fatalf("a's new file did not reach b while holding: %v", err)
	}
	files, _, err := a.Arena.Approve(t.Context())
	if err != nil || files != 17 {
		t.Fatalf("approve = %d, %v; want the 17 files still missing", files, err)
	}
	converge(t, h)
	tree, err := TreeOf(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(tree) != 5 { // d, d/f00, d/f18, d/f19, new.txt
		t.Fatalf("b after approval: %v", tree)
	}
}
