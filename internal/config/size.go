package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Size is an amount of storage: either a number of bytes or a percentage of
// the disk holding the data it limits. Cache limits are naturally said either
// way ("50GB" on a NAS, "10%" on a laptop), so both forms are first-class.
type Size struct {
	Bytes   int64   // used when Percent is zero
	Percent float64 // 0 < Percent <= 100 means a share of the disk
}

var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "pb": 1e15,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40, "pib": 1 << 50,
	"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40,
}

// ParseSize parses "50GB", "512MiB", "1.5TB", "1024" (bytes) or "10%".
// Decimal units (KB, MB, GB…) are powers of 1000, binary ones (KiB, MiB…)
// and the bare letters K, M, G, T powers of 1024, as in df -h.
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return Size{}, errors.New(`empty size; want e.g. "50GB", "512MiB" or "10%"`)
	}
	if num, ok := strings.CutSuffix(t, "%"); ok {
		p, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
		if err != nil || math.IsNaN(p) || p < 0 || p > 100 {
			return Size{}, fmt.Errorf("bad percentage %q: want a number from 0 to 100 followed by %%", s)
		}
		return Size{Percent: p}, nil
	}
	i := len(t)
	for i > 0 && (t[i-1] < '0' || t[i-1] > '9') && t[i-1] != '.' {
		i--
	}
	num, unit := strings.TrimSpace(t[:i]), strings.ToLower(strings.TrimSpace(t[i:]))
	mult, ok := sizeUnits[unit]
	if !ok {
		return Size{}, fmt.Errorf("bad size %q: unknown unit %q (use B, KB, MB, GB, TB, KiB, MiB, GiB, TiB or %%)", s, strings.TrimSpace(t[i:]))
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(v) || v < 0 {
		return Size{}, fmt.Errorf("bad size %q: want a non-negative number and a unit, e.g. \"50GB\"", s)
	}
	b := v * float64(mult)
	if b >= math.MaxInt64 {
		return Size{}, fmt.Errorf("bad size %q: too large", s)
	}
	return Size{Bytes: int64(b)}, nil
}

// Of returns the limit in bytes for a disk of total bytes.
func (s Size) Of(total int64) int64 {
	if s.Percent > 0 {
		return int64(float64(total) * s.Percent / 100)
	}
	return s.Bytes
}

// IsPercent tells whether s is relative to the disk size.
func (s Size) IsPercent() bool { return s.Percent > 0 }

// String renders s in a form ParseSize accepts.
func (s Size) String() string {
	if s.Percent > 0 {
		return strconv.FormatFloat(s.Percent, 'f', -1, 64) + "%"
	}
	for _, u := range []struct {
		name string
		n    int64
	}{{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if s.Bytes >= u.n && s.Bytes%u.n == 0 {
			return strconv.FormatInt(s.Bytes/u.n, 10) + u.name
		}
	}
	return strconv.FormatInt(s.Bytes, 10) + "B"
}

// MarshalText renders s as ParseSize accepts it.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses a size string.
func (s *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// duration decodes a TOML string such as "3s" or "720h" (time.ParseDuration,
// plus a "d" suffix for days since retention periods are said in days).
type duration time.Duration

func (d *duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = duration(v)
	return nil
}

// ParseDuration is time.ParseDuration that also accepts whole days ("30d")
// and refuses negative values, which no setting means.
func ParseDuration(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	if n, ok := strings.CutSuffix(t, "d"); ok && n != "" && !strings.ContainsAny(n, "hmsµun") {
		days, err := strconv.ParseUint(n, 10, 32)
		if err == nil && days <= math.MaxInt64/uint64(24*time.Hour) {
			return time.Duration(days) * 24 * time.Hour, nil
		}
	}
	v, err := time.ParseDuration(t)
	if err != nil {
		return 0, fmt.Errorf("bad duration %q: want e.g. \"200ms\", \"3s\", \"5m\", \"720h\" or \"30d\"", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("bad duration %q: must not be negative", s)
	}
	return v, nil
}
