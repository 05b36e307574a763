package real_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// TestRandomChangesStayConsistent applies random edits, creations, renames
// (within and across directories, over existing files too), deletions and
// duplicate contents between scans, and checks after every scan that the
// index agrees with a replay of the history.
func TestRandomChangesStayConsistent(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			f := newFixture(t)
			rng := rand.New(rand.NewPCG(seed, 99))
			content := func() string { return fmt.Sprint("c", rng.IntN(20)) } // few contents: many duplicates
			path := func() string { return filepath.Join(fmt.Sprint("d", rng.IntN(4)), fmt.Sprint("f", rng.IntN(15))) }
			for i := 0; i < 40; i++ {
				f.write(path(), content())
			}
			for round := 0; round < 25; round++ {
				for k := 0; k < 10; k++ {
					a, b := filepath.Join(f.root, path()), filepath.Join(f.root, path())
					switch rng.IntN(5) {
					case 0:
						os.WriteFile(a, []byte(content()), 0o644)
					case 1:
						os.Rename(a, b)
					case 2:
						os.Remove(a)
					case 3:
						os.MkdirAll(filepath.Dir(b), 0o755)
						os.Rename(a, b)
					case 4:
						if rng.IntN(4) == 0 {
							os.RemoveAll(filepath.Dir(a))
						}
					}
				}
				f.scan()
				checkConsistent(t, f)
			}
		})
	}
}
