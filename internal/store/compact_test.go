package store_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/realizefs/realize"
	"github.com/realizefs/realize/internal/store"
	bolt "go.etcd.io/bbolt"
)

var bucketT = []byte("t")

// fill writes n keys of size bytes each, in batches, from key first.
func fill(t testing.TB, db *store.DB, first, n, size int) {
	t.Helper()
	val := make([]byte, size)
	for i := first; i < first+n; i += 500 {
		err := db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(bucketT)
			if err != nil {
				return err
			}
			for j := i; j < min(i+500, first+n); j++ {
				if err := b.Put(store.SeqKey(uint64(j)), val); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// drop deletes keys [first, first+n).
func drop(t testing.TB, db *store.DB, first, n int) {
	t.Helper()
	err := db.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketT).Cursor()
		for k, _ := c.Seek(store.SeqKey(uint64(first))); k != nil && store.Uint(k) < uint64(first+n); k, _ = c.Seek(store.SeqKey(uint64(first))) {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func count(t testing.TB, db *store.DB) (n int) {
	t.Helper()
	db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketT); b != nil {
			n = b.Stats().KeyN
		}
		return nil
	})
	return n
}

// TestCompactShrinksWhileInUse: after most of the data is deleted, a
// compaction gives the space back, keeps every key and the bucket
// sequences, and readers and writers running meanwhile all succeed.
func TestCompactShrinksWhileInUse(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir, peerA)
	defer db.Close()
	fill(t, db, 0, 10000, 2000)
	drop(t, db, 0, 9000)
	db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketT).SetSequence(77) })
	u, err := db.Usage()
	if err != nil || !u.CompactWorth(1<<20) {
		t.Fatalf("usage %+v (%v): a compaction should be worth it", u, err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var reads, writes atomic.Int64
	var bad atomic.Value
	wg.Add(2)
	go func() { // readers never fail and always see the data
		defer wg.Done()
		for ctx.Err() == nil {
			err := db.View(func(tx *bolt.Tx) error {
				if tx.Bucket(bucketT).Get(store.SeqKey(9999)) == nil {
					return errors.New("key missing")
				}
				return nil
			})
			if err != nil {
				bad.Store(err)
			}
			reads.Add(1)
		}
	}()
	go func() { // writers wait, then land in the new file
		defer wg.Done()
		for i := 0; ctx.Err() == nil && i < 1000; i++ {
			err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketT).Put(store.SeqKey(uint64(100000+i)), []byte("w")) })
			if err != nil {
				bad.Store(err)
			}
			writes.Add(1)
		}
	}()
	st, err := db.Compact(t.Context())
	time.Sleep(20 * time.Millisecond)
	cancel()
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if e := bad.Load(); e != nil {
		t.Fatalf("a transaction failed during compaction: %v", e)
	}
	t.Logf("compaction %d -> %d bytes in %d copies, writers held %v; %d reads, %d writes meanwhile", st.Before, st.After, st.Copies, st.WritersHeld, reads.Load(), writes.Load())
	if st.After >= st.Before/2 {
		t.Errorf("file %d -> %d bytes: not reclaimed", st.Before, st.After)
	}
	if got := count(t, db); got != 1000+int(writes.Load()) {
		t.Errorf("%d keys after compaction, want %d", got, 1000+writes.Load())
	}
	db.View(func(tx *bolt.Tx) error {
		if s := tx.Bucket(bucketT).Sequence(); s != 77 {
			t.Errorf("bucket sequence %d after compaction, want 77", s)
		}
		return nil
	})
	if _, err := os.Stat(filepath.Join(dir, store.FileName+".compact")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("copy left behind: %v", err)
	}
	db.Close()
	db = mustOpen(t, dir, peerA) // the swapped-in file is a whole database
	if got := count(t, db); got != 1000+int(writes.Load()) {
		t.Errorf("%d keys after reopening", got)
	}
	// A second daemon is still refused: the new file is locked.
	if _, err := store.Open(t.Context(), dir, store.Options{Peer: peerA}); err == nil {
		t.Error("second open of a compacted database succeeded")
	}
}

// TestCompactQuietCopiesOnce: with no write during the copy, one copy is
// made while writers run, and they are held back only for the swap.
func TestCompactQuietCopiesOnce(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir, peerA)
	defer db.Close()
	fill(t, db, 0, 5000, 2000)
	drop(t, db, 0, 4000)
	st, err := db.Compact(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d -> %d bytes, %d copies, writers held %v", st.Before, st.After, st.Copies, st.WritersHeld)
	if st.Copies != 1 || st.After >= st.Before/2 {
		t.Errorf("stats %+v: want one copy, half the size at most", st)
	}
	if got := count(t, db); got != 1000 {
		t.Errorf("%d keys after compaction, want 1000", got)
	}
}

// TestCompactBusyLargeIsPutOff: writes keep coming while a database
// with more live data than may be copied holding writers back is being
// compacted: after the tries with writers running, it is left as it is.
func TestCompactBusyLargeIsPutOff(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 40 MB")
	}
	dir := t.TempDir()
	db := mustOpen(t, dir, peerA)
	defer db.Close()
	fill(t, db, 0, 20000, 2000)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ctx.Err() == nil; i++ {
			db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketT).Put(store.SeqKey(uint64(50000+i%10)), []byte("w")) })
			time.Sleep(time.Millisecond)
		}
	}()
	st, err := db.Compact(t.Context())
	cancel()
	<-done
	if realize.KindOf(err) != realize.Busy || st.Copies != 2 || st.WritersHeld > time.Second {
		t.Fatalf("compaction under writes: %+v, %v; want put off (busy) after 2 copies", st, err)
	}
	if got := count(t, db); got < 20000 {
		t.Errorf("%d keys left", got)
	}
	if _, err := os.Stat(filepath.Join(dir, store.FileName+".compact")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("copy left behind: %v", err)
	}
}

// TestCompactKill9: a process writes, deletes and compacts in a loop and
// is killed with SIGKILL at random moments, some inside a compaction.
// Every write it reported committed is there after each restart, and no
// copy is left behind.
func TestCompactKill9(t *testing.T) {
	if os.Getenv("REALIZE_COMPACT_CHILD") != "" {
		compactChild(os.Getenv("REALIZE_COMPACT_CHILD"))
		return
	}
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	mustOpen(t, dir, peerA).Close()
	rng := rand.New(rand.NewPCG(1, 2))
	next := 0
	for round := 0; round < 6; round++ {
		acked, sawCompact := runChild(t, dir, next, time.Duration(20+rng.IntN(150))*time.Millisecond)
		db := mustOpen(t, dir, peerA)
		db.View(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketT)
			for _, k := range acked {
				if b == nil || b.Get(store.SeqKey(uint64(k))) == nil {
					t.Fatalf("round %d: acknowledged key %d lost", round, k)
				}
			}
			return nil
		})
		db.Close()
		if _, err := os.Stat(filepath.Join(dir, store.FileName+".compact")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("round %d: copy left behind after reopening: %v", round, err)
		}
		t.Logf("round %d: %d keys acknowledged, killed %s a compaction", round, len(acked), map[bool]string{true: "during or after", false: "before"}[sawCompact])
		next += 1 << 20
	}
}

// runChild runs the writer until killed after d (counted from its first
// compaction when it gets there in time) and returns the keys it said
// were committed.
func runChild(t *testing.T, dir string, first int, d time.Duration) (acked []int, sawCompact bool) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCompactKill9$")
	cmd.Env = append(os.Environ(), "REALIZE_COMPACT_CHILD="+dir+"|"+strconv.Itoa(first))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(5*time.Second, func() { cmd.Process.Signal(syscall.SIGKILL) })
	defer timer.Stop()
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if line == "compacting" && !sawCompact {
			sawCompact = true
			timer.Reset(d)
			continue
		}
		if k, err := strconv.Atoi(line); err == nil {
			acked = append(acked, k)
		}
	}
	cmd.Wait()
	return acked, sawCompact
}

// compactChild is the killed process: writes in batches, reports each
// committed batch, deletes old keys and compacts now and then.
func compactChild(arg string) {
	var dir string
	var first int
	for i := len(arg) - 1; i >= 0; i-- {
		if arg[i] == '|' {
			dir, first = arg[:i], atoi(arg[i+1:])
			break
		}
	}
	db, err := store.Open(context.Background(), dir, store.Options{Peer: peerA})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	junk := make([]byte, 2000)
	for k := first; ; k += 100 {
		err := db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(bucketT)
			if err != nil {
				return err
			}
			j, err := tx.CreateBucketIfNotExists([]byte("junk"))
			for i := k; err == nil && i < k+100; i++ {
				if err = b.Put(store.SeqKey(uint64(i)), []byte("v")); err == nil {
					err = j.Put(store.SeqKey(uint64(i)), junk)
				}
			}
			return err
		})
		if err != nil {
			os.Exit(4)
		}
		for i := k; i < k+100; i++ {
			fmt.Println(i)
		}
		if (k-first)%5000 == 4900 {
			// The junk goes: space to reclaim.
			db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte("junk")) })
			fmt.Println("compacting")
			if _, err := db.Compact(context.Background()); err != nil {
				os.Exit(5)
			}
		}
	}
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }
