// Command guestio measures one sequential write or read of a file and
// prints its throughput: the file-system side of `make bench`'s mount
// stage, run inside the user-mode Linux guest (whose busybox dd does not
// time itself). It is built static by the bench and reached through
// hostfs; see internal/bench/mount.go.
//
//	guestio write FILE MIB   write MIB MiB of incompressible bytes, fsync
//	guestio read FILE        read FILE whole
//
// Output: "<MB/s> <bytes> <seconds>".
package main

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"time"
)

const chunk = 1 << 20

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "guestio:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	switch {
	case len(args) == 3 && args[0] == "write":
		mib, err := strconv.Atoi(args[2])
		if err != nil || mib <= 0 {
			return fmt.Errorf("bad size %q", args[2])
		}
		return write(args[1], mib)
	case len(args) == 2 && args[0] == "read":
		return read(args[1])
	}
	return errors.New("usage: guestio write FILE MIB | guestio read FILE")
}

func write(path string, mib int) error {
	buf := make([]byte, chunk)
	rng := rand.NewChaCha8([32]byte{byte(mib)})
	rng.Read(buf)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	start := time.Now()
	for i := range mib {
		buf[0], buf[1] = byte(i), byte(i>>8) // no two chunks alike
		if _, err := f.Write(buf); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	report(int64(mib)*chunk, time.Since(start))
	return nil
}

func read(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, chunk)
	var n int64
	start := time.Now()
	for {
		k, err := f.Read(buf) // io.Discard would read in its own small pieces
		n += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	report(n, time.Since(start))
	return nil
}

func report(n int64, d time.Duration) {
	fmt.Printf("%.1f %d %.4f\n", float64(n)/1e6/d.Seconds(), n, d.Seconds())
}
