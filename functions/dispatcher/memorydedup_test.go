package dispatcher

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/llm-proxy/llm-proxy/internal/testenv"
)

func TestMemoryDedup(t *testing.T) {
	ctx := context.Background()
	clk := testenv.NewClock(time.Unix(1000, 0))
	d := NewMemoryDedup(3, time.Hour, time.Minute)
	d.epoch, d.now = clk.Now(), clk.Now
	claim := func(lease string, keys ...string) string {
		t.Helper()
		states, err := d.Claim(ctx, keys, lease)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(states)
	}
	// States print as numbers: Claimed 1, Done 2, InFlight 3.

	// Claimed once; a second claim sees the lease; done is a duplicate.
	if got := claim("l1", "a", "b"); got != "[1 1]" {
		t.Fatalf("first claim: %s", got)
	}
	if got := claim("l2", "a"); got != "[3]" {
		t.Fatalf("leased key: %s", got)
	}
	if err := d.Done(ctx, []string{"a"}); err != nil {
		t.Fatal(err)
	}
	if got := claim("l2", "a"); got != "[2]" {
		t.Fatalf("done key: %s", got)
	}

	// A released lease can be claimed again; a release with another lease
	// does nothing.
	if err := d.Release(ctx, []string{"b"}, "other"); err != nil {
		t.Fatal(err)
	}
	if got := claim("l3", "b"); got != "[3]" {
		t.Fatalf("release with another lease: %s", got)
	}
	if err := d.Release(ctx, []string{"b"}, "l1"); err != nil {
		t.Fatal(err)
	}
	if got := claim("l3", "b"); got != "[1]" {
		t.Fatalf("released key: %s", got)
	}

	// A lease expires (a crashed holder); done expires after the TTL.
	clk.Advance(2 * time.Minute)
	if got := claim("l4", "b"); got != "[1]" {
		t.Fatalf("expired lease: %s", got)
	}
	if got := claim("l4", "a"); got != "[2]" {
		t.Fatalf("done within the TTL: %s", got)
	}
	clk.Advance(time.Hour)
	if got := claim("l5", "a"); got != "[1]" {
		t.Fatalf("done past the TTL: %s", got)
	}

	// At most 3 keys: the oldest are forgotten first (a, then b).
	if err := d.Done(ctx, []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	if got := claim("l6", "c", "d", "e"); got != "[1 1 1]" {
		t.Fatalf("new keys: %s", got)
	}
	if len(d.m) > 3 {
		t.Fatalf("%d keys remembered, max 3", len(d.m))
	}
	if got := claim("l7", "a", "e"); got != "[1 3]" {
		t.Fatalf("after eviction: %s (a forgotten, e leased)", got)
	}
	// Done for a forgotten key remembers it again.
	if err := d.Done(ctx, []string{"z"}); err != nil {
		t.Fatal(err)
	}
	if got := claim("l8", "z"); got != "[2]" {
		t.Fatalf("done without a claim: %s", got)
	}
	if len(d.m) > 3 || len(d.slots) > 3 {
		t.Fatalf("%d keys, %d slots, max 3", len(d.m), len(d.slots))
	}
}

// A full MemoryDedup lives as long as the process: nothing in it may be
// for the garbage collector to trace.
func TestMemoryDedupFullSizeIsNotScanned(t *testing.T) {
	const n = 100000 // the default size
	ctx := context.Background()
	before := heapStats()
	d := NewMemoryDedup(n, time.Hour, time.Minute)
	keys := make([]string, 100)
	for i := 0; i < n; i += len(keys) {
		for j := range keys {
			keys[j] = fmt.Sprintf("https://llm-proxy.example/proxy\x00%08x-8b2e-4c55-9a53-%012x", i+j, i+j)
		}
		lease := Owner{}.lease()
		if _, err := d.Claim(ctx, keys, lease); err != nil {
			t.Fatal(err)
		}
		if err := d.Done(ctx, keys); err != nil {
			t.Fatal(err)
		}
	}
	keys = nil
	after := heapStats()
	runtime.KeepAlive(d)
	if len(d.m) != n {
		t.Fatalf("%d keys remembered, want %d", len(d.m), n)
	}
	heap, scan := mib(after.live-before.live), mib(after.scannable-before.scannable)
	t.Logf("%d keys: %.1f MiB of heap, %.1f MiB of it scannable", n, heap, scan)
	if scan > 0.5 {
		t.Errorf("a full MemoryDedup holds %.1f MiB of scannable heap, want none", scan)
	}
}
