package testenv

import (
	"strings"
	"sync"
	"testing"
	"time"
)

func TestClock(t *testing.T) {
	tests := []struct {
		name  string
		start time.Time
		steps []time.Duration
		want  time.Time
	}{
		{"zero start is the epoch", time.Time{}, nil, Epoch},
		{"given start", time.Unix(100, 0), nil, time.Unix(100, 0)},
		{"advances add up", time.Time{}, []time.Duration{time.Second, time.Minute, -2 * time.Second}, Epoch.Add(time.Minute - time.Second)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewClock(tt.start)
			for _, d := range tt.steps {
				c.Advance(d)
			}
			if got := c.Now(); !got.Equal(tt.want) {
				t.Fatalf("Now() = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestConcurrentUse is for -race: the clock and the buffer are shared by
// the code under test's goroutines and the test.
func TestConcurrentUse(t *testing.T) {
	c := NewClock(time.Time{})
	var b Buffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				c.Advance(time.Millisecond)
				_ = c.Now()
				_, _ = b.Write([]byte("x"))
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if got, want := c.Now(), Epoch.Add(800*time.Millisecond); !got.Equal(want) {
		t.Errorf("Now() = %v, want %v", got, want)
	}
	if got := b.String(); got != strings.Repeat("x", 800) {
		t.Errorf("buffer holds %d bytes, want 800", len(got))
	}
}
