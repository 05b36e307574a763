package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestKernelHarness checks test/kernel itself, no NFS server needed: a
// guest boots, loads the NFS and overlay modules and stacks overlayfs; a
// failed check fails the run and says which; a guest that hangs is killed
// at the time limit and its UML process does not outlive the run.
func TestKernelHarness(t *testing.T) {
	requireKernel(t)
	t.Run("pass", func(t *testing.T) {
		r := runGuest(t, filepath.Join(kernelDir, "scripts", "harness.sh"), 60*time.Second,
			map[string]string{"GREETING": "it's a 'quoted' value"})
		if !r.passed() {
			t.Fatalf("harness guest failed (exit %d):\n%s\nthe whole console:\n%s", r.code, r.failures(), r.out)
		}
	})
	t.Run("fail", func(t *testing.T) {
		r := runGuest(t, guestScript(t, "kt_check 'a deliberate failure' false\nkt_log after\n"), 60*time.Second, nil)
		if r.code != 1 || !strings.Contains(r.out, "KTEST: FAIL: a deliberate failure") ||
			!strings.Contains(r.out, "KTEST: RESULT FAIL") || !strings.Contains(r.out, "] after") {
			t.Fatalf("want exit 1, the failed check named and the script gone on; got exit %d:\n%s", r.code, r.out)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		start := time.Now()
		r := runGuest(t, guestScript(t, "kt_log hanging\nsleep 600\n"), 5*time.Second, nil)
		if r.code != 124 || !strings.Contains(r.out, "RESULT FAIL (timeout") {
			t.Fatalf("want exit 124 and a timeout result; got exit %d:\n%s", r.code, r.out)
		}
		if d := time.Since(start); d > 20*time.Second {
			t.Errorf("a 5 s limit took %v", d)
		}
		if r.umlPID == 0 {
			t.Fatalf("the runner did not report UML's pid:\n%s", r.out)
		}
		if err := syscall.Kill(r.umlPID, 0); err != syscall.ESRCH {
			t.Errorf("UML process %d outlived its run (kill -0: %v)", r.umlPID, err)
		}
	})
}

// kernelFetchedField is the counter in `realize status --json`
// (cache.<field>) of bytes fetched from peers to serve reads through the
// mount.
// TODO(nfs): rename it here if the daemon names its on-demand fetch counter
// differently.
const kernelFetchedField = "fetched_bytes"

// kernelFetchSlack is how much more than it read the kernel may make B
// fetch: block rounding at the ends of a partial read and read-ahead.
const kernelFetchSlack = 16 << 20

// TestKernelNFS is the kernel acceptance of the NFS view (SPEC §4.7, §6):
// two daemons; A holds the files real, B none (its arena is unpinned). A
// real Linux kernel mounts B's export (and A's) and reads, writes and sees
// a conflict through it, which it resolves by deleting the version kept
// aside; see test/kernel/scripts/acceptance.sh for the guest's side. Here: B fetched only about what the kernel read, and the
// kernel's write became real on A (and on B).
func TestKernelNFS(t *testing.T) {
	requireKernel(t)
	if testing.Short() {
		t.Skip("slow: 170 MiB through two daemons and a kernel")
	}
	a := newNFSPeer(t, "alpha", true) // A keeps everything real, the kernel's write included
	b := newNFSPeer(t, "bravo", false)
	const partSkip, partRead = 32, 4 // MiB
	small := bytesOf(1<<20+17, 11)
	big := bytesOf(100<<20, 12)
	part := bytesOf(64<<20, 13)
	clashA := []byte("alpha's version of clash.txt\n")
	clashB := []byte("bravo's version of clash.txt\n")
	for name, data := range map[string][]byte{"small.txt": small, "big.bin": big, "part.bin": part, "clash.txt": clashA} {
		if err := os.WriteFile(filepath.Join(a.arena, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Before the peers meet: concurrent versions, a conflict once they do.
	if err := os.WriteFile(filepath.Join(b.arena, "clash.txt"), clashB, 0o644); err != nil {
		t.Fatal(err)
	}
	introduce(a.peer, b.peer)
	introduce(b.peer, a.peer)
	a.start()
	b.start()
	for _, p := range []*nfsPeer{a, b} {
		// The daemon serves NFS: a daemon that does not is a failure, never
		// a reason to skip (skipping is for machines that cannot run UML).
		if !p.servesNFS(5 * time.Second) {
			t.Fatalf("%s serves no NFS: nothing accepts connections on %s (its config has nfs = %q)\ndaemon log:\n%s",
				p.name, p.nfs, p.nfs, p.logs)
		}
	}
	a.waitIndexed(2 * time.Minute)
	b.waitFor("b to learn a's files", time.Minute, func() bool {
		seen := map[string]bool{}
		for _, r := range b.log() {
			seen[r.Path] = true
		}
		return seen["small.txt"] && seen["big.bin"] && seen["part.bin"]
	})
	b.waitFor("the conflict on clash.txt", time.Minute, func() bool {
		out, _, code := b.run("conflicts", "--json")
		var recs []struct {
			Arena, Path string
		}
		return code == 0 && json.Unmarshal([]byte(out), &recs) == nil && len(recs) > 0 && recs[0].Path == "clash.txt"
	})
	holdsNothing := func(when string) {
		t.Helper()
		for _, name := range []string{"small.txt", "big.bin", "part.bin"} {
			if _, err := os.Lstat(filepath.Join(b.arena, name)); err == nil {
				t.Errorf("%s: b holds %s real, but its arena is unpinned", when, name)
			}
		}
	}
	holdsNothing("before the kernel read")
	before, counted := fetchedBytes(t, b)

	const writeLines = 100000
	r := runGuest(t, filepath.Join(kernelDir, "scripts", "acceptance.sh"), 4*time.Minute, map[string]string{
		"NFS_A": a.nfsPort(), "NFS_B": b.nfsPort(), "ARENA": "home",
		"SMALL_SHA256": sha256Hex(small),
		"BIG_SIZE":     strconv.Itoa(len(big)), "BIG_SHA256": sha256Hex(big),
		"PART_SIZE": strconv.Itoa(len(part)), "PART_SKIP_MIB": strconv.Itoa(partSkip), "PART_MIB": strconv.Itoa(partRead),
		"PART_SHA256":    sha256Hex(part[partSkip<<20 : (partSkip+partRead)<<20]),
		"CLASH_A_SHA256": sha256Hex(clashA), "CLASH_B_SHA256": sha256Hex(clashB),
		"WRITE_DIR": "from-guest", "WRITE_LINES": strconv.Itoa(writeLines),
	})
	if !r.passed() {
		t.Fatalf("the kernel acceptance failed in the guest (exit %d):\n%s\nthe whole console:\n%s\nb's daemon log:\n%s", r.code, r.failures(), r.out, b.logs)
	}

	holdsNothing("after the kernel read")

	// B fetched what the kernel read (small.txt, big.bin whole, 4 MiB of
	// part.bin) and not much more.
	after, _ := fetchedBytes(t, b)
	if !counted {
		t.Errorf("TODO(nfs): b's `realize status --json` has no cache.%s, the count of bytes fetched "+
			"from peers for reads; add it (or rename kernelFetchedField) so this test can check that "+
			"reads fetch only the ranges read", kernelFetchedField)
	} else {
		read := int64(len(small) + len(big) + partRead<<20)
		got := after - before
		t.Logf("b fetched %d MiB for %d MiB read by the kernel", got>>20, read>>20)
		if got < read || got > read+kernelFetchSlack {
			t.Errorf("b fetched %d bytes while the kernel read %d (allowed: up to %d more)", got, read, kernelFetchSlack)
		}
	}

	// The kernel deleted the version of clash.txt kept aside: the
	// conflict is resolved on both peers.
	for _, p := range []*peer{a.peer, b.peer} {
		p.waitFor("clash.txt resolved on "+p.name, 30*time.Second, func() bool { return len(p.conflicts()) == 0 })
	}

	// The kernel's write is real on B, where it was made, and reaches A.
	written := seqText(writeLines)
	if got, err := os.ReadFile(filepath.Join(b.arena, "from-guest", "numbers.txt")); err != nil || !bytes.Equal(got, written) {
		t.Errorf("the file the kernel wrote through b is not real on b (%v, %d bytes)", err, len(got))
	}
	waitFile(t, a.peer, "from-guest/numbers.txt", written, 30*time.Second)
	a.stop()
	b.stop()
}

// fetchedBytes reads cache.<kernelFetchedField> from p's status; false
// when the status has no such field.
func fetchedBytes(t *testing.T, p *nfsPeer) (int64, bool) {
	t.Helper()
	out := p.mustRun("status", "--json")
	var st struct {
		Cache map[string]json.RawMessage `json:"cache"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json %q: %v", out, err)
	}
	v, ok := st.Cache[kernelFetchedField]
	if !ok {
		return 0, false
	}
	var n int64
	if err := json.Unmarshal(v, &n); err != nil {
		t.Fatalf("status --json: cache.%s = %s: %v", kernelFetchedField, v, err)
	}
	return n, true
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
