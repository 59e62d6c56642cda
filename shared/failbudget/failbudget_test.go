package failbudget

import (
	"fmt"
	"testing"
	"time"
)

func TestBudget(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	b := New(3, time.Minute, 100)
	for i := 1; i <= 3; i++ {
		if wait, _ := b.Blocked("ip", t0); wait != 0 {
			t.Fatalf("blocked after %d failures", i-1)
		}
		if n := b.Failed("ip", t0); n != i {
			t.Fatalf("failures = %d, want %d", n, i)
		}
	}
	wait, first := b.Blocked("ip", t0.Add(10*time.Second))
	if wait != 50*time.Second || !first {
		t.Fatalf("Blocked = %v %v, want 50s, first", wait, first)
	}
	if _, first := b.Blocked("ip", t0.Add(11*time.Second)); first {
		t.Fatal("a block must be reported once")
	}
	if wait, _ := b.Blocked("other", t0); wait != 0 {
		t.Fatal("another client is blocked")
	}
	if wait, _ := b.Blocked("ip", t0.Add(time.Minute)); wait != 0 {
		t.Fatal("still blocked after the window")
	}
	b.Failed("ip", t0)
	b.Succeeded("ip")
	if b.Len() != 0 {
		t.Fatal("success must forget the client")
	}
}

func TestBudgetMemoryIsBounded(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	b := New(3, time.Minute, 5)
	for i := range 50 {
		b.Failed(fmt.Sprintf("198.51.100.%d", i), t0)
		if b.Len() > 5 {
			t.Fatalf("after %d clients: %d entries", i+1, b.Len())
		}
	}
	b.Failed("late", t0.Add(2*time.Minute)) // every earlier entry expired
	if b.Len() != 1 {
		t.Fatalf("expired entries kept: %d", b.Len())
	}
}
