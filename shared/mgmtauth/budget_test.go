package mgmtauth

import (
	"fmt"
	"testing"
	"time"
)

func TestBudgetMemoryBound(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := New(StaticToken("x"), Options{MaxClients: 5, Clock: func() time.Time { return now }})
	for i := range 50 {
		a.failed(fmt.Sprintf("192.0.2.%d", i), now)
		if n := len(a.clients); n > 5 {
			t.Fatalf("after %d clients: %d entries", i+1, n)
		}
	}
	// Expired entries are dropped first.
	later := now.Add(2 * time.Minute)
	a.failed("198.51.100.1", later)
	if _, ok := a.clients["198.51.100.1"]; !ok || len(a.clients) != 1 {
		t.Fatalf("entries after expiry: %d", len(a.clients))
	}
}
