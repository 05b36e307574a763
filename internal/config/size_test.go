package config

import (
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    Size
		wantErr bool
	}{
		{"50GB", Size{Bytes: 50e9}, false},
		{"512MiB", Size{Bytes: 512 << 20}, false},
		{"1.5 TB", Size{Bytes: 1.5e12}, false},
		{"1024", Size{Bytes: 1024}, false},
		{"0", Size{}, false},
		{"10%", Size{Percent: 10}, false},
		{"2.5%", Size{Percent: 2.5}, false},
		{"1g", Size{Bytes: 1 << 30}, false},
		{"", Size{}, true},
		{"GB", Size{}, true},
		{"-1GB", Size{}, true},
		{"101%", Size{}, true},
		{"5 lightyears", Size{}, true},
		{"99999999PB", Size{}, true},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseSize(%q) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err == nil {
			back, err := ParseSize(got.String())
			if err != nil || back != got {
				t.Errorf("String round trip of %q: %q -> %+v, %v", tt.in, got.String(), back, err)
			}
		}
	}
	if got := (Size{Percent: 10}).Of(1000); got != 100 {
		t.Errorf("10%% of 1000 = %d", got)
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"3s", 3 * time.Second, false},
		{"200ms", 200 * time.Millisecond, false},
		{"720h", 720 * time.Hour, false},
		{"30d", 30 * 24 * time.Hour, false},
		{"1h30m", 90 * time.Minute, false},
		{"-1s", 0, true},
		{"3", 0, true},
		{"d", 0, true},
		{"soon", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}
