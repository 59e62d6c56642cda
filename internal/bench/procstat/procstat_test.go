package procstat

import (
	"os"
	"testing"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name         string
		in           string
		utime, stime uint64
		wantErr      bool
	}{
		{"plain", "1234 (llm-proxy) S 1 1234 1234 0 -1 4194560 900 0 0 0 250 37 0 0 20 0 8 0 100 1000 200 18446744073709551615", 250, 37, false},
		{"spaces and parens in name", "77 (a b) c)) R 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15", 11, 12, false},
		{"no name", "77 R 1 2", 0, 0, true},
		{"short", "77 (x) R 1 2 3", 0, 0, true},
		{"not a number", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 abc 3 0 0", 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, s, err := ParseStat([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if u != tt.utime || s != tt.stime {
				t.Errorf("got utime %d stime %d, want %d %d", u, s, tt.utime, tt.stime)
			}
		})
	}
}

func TestParseStatus(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Mem
		wantErr bool
	}{
		{"both", "Name:\tx\nVmPeak:\t 9000 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\nThreads:\t5\n", Mem{RSS: 1 << 20, HWM: 2 << 20}, false},
		{"missing", "Name:\tkthreadd\nThreads:\t1\n", Mem{}, true},
		{"bad unit", "VmHWM:\t1 MB\nVmRSS:\t1 kB\n", Mem{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStatus([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestOwnProcess(t *testing.T) {
	m, err := Memory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS <= 0 || m.HWM < m.RSS {
		t.Errorf("implausible memory %+v", m)
	}
	if _, err := CPU(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if _, err := CPU(-1); err == nil {
		t.Error("CPU(-1): want an error")
	}
}
