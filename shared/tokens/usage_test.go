package tokens

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/llm-proxy/llm-proxy/shared/store"
)

// fakeSink records the batches it accepts and fails while failing is set.
type fakeSink struct {
	mu      sync.Mutex
	failing bool
	batches [][]store.UsageDelta
	totals  map[string]store.UsageDelta
	flushed chan struct{}
}

func newFakeSink() *fakeSink {
	return &fakeSink{totals: map[string]store.UsageDelta{}, flushed: make(chan struct{}, 100)}
}

func (s *fakeSink) AddUsage(_ context.Context, deltas []store.UsageDelta) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failing {
		return errors.New("database is down")
	}
	s.batches = append(s.batches, deltas)
	for _, d := range deltas {
		t := s.totals[d.TokenID]
		t.TokenID = d.TokenID
		t.Requests += d.Requests
		t.CacheHits += d.CacheHits
		if d.LastUsedAt.After(t.LastUsedAt) {
			t.LastUsedAt = d.LastUsedAt
		}
		s.totals[d.TokenID] = t
	}
	select {
	case s.flushed <- struct{}{}:
	default:
	}
	return nil
}

func (s *fakeSink) total(id string) store.UsageDelta {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.totals[id]
}

func (s *fakeSink) setFailing(f bool) {
	s.mu.Lock()
	s.failing = f
	s.mu.Unlock()
}

func TestUsageBatcherAggregates(t *testing.T) {
	t.Parallel()
	sink := newFakeSink()
	c := newClock()
	b := NewUsageBatcher(sink.AddUsage, UsageOptions{Now: c.Now})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 250 {
				b.Record(fmt.Sprintf("t%d", g%2), i%5 == 0)
			}
		})
	}
	wg.Wait()
	c.Advance(time.Second)
	b.Record("t0", false)
	if err := b.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(sink.batches) != 1 || len(sink.batches[0]) != 2 {
		t.Fatalf("batches = %v, want one batch with one delta per token", sink.batches)
	}
	t0, t1 := sink.total("t0"), sink.total("t1")
	if t0.Requests != 1001 || t0.CacheHits != 200 || t1.Requests != 1000 || t1.CacheHits != 200 {
		t.Fatalf("totals t0=%+v t1=%+v", t0, t1)
	}
	if !t0.LastUsedAt.Equal(c.Now()) || !t1.LastUsedAt.Equal(c.Now().Add(-time.Second)) {
		t.Fatalf("last used: t0 %v t1 %v", t0.LastUsedAt, t1.LastUsedAt)
	}
	if b.Pending() != 0 {
		t.Fatal("pending after flush")
	}
	// Nothing pending: no call.
	if err := b.Flush(context.Background()); err != nil || len(sink.batches) != 1 {
		t.Fatalf("empty flush: %v, %d batches", err, len(sink.batches))
	}
}

func TestUsageBatcherKeepsDeltasOnFailure(t *testing.T) {
	t.Parallel()
	sink := newFakeSink()
	b := NewUsageBatcher(sink.AddUsage, UsageOptions{MaxPending: 3})
	ctx := context.Background()
	b.Record("a", false)
	b.Record("a", true)
	b.Record("b", false)
	sink.setFailing(true)
	if err := b.Flush(ctx); err == nil {
		t.Fatal("flush against a failing sink succeeded")
	}
	// Counting goes on while the sink is down; the bound holds.
	b.Record("a", false)
	b.Record("c", false)
	b.Record("d", false) // fourth token: dropped
	if err := b.Flush(ctx); err == nil {
		t.Fatal("flush against a failing sink succeeded")
	}
	if b.Pending() != 3 || b.Dropped() != 1 {
		t.Fatalf("pending %d dropped %d, want 3 and 1", b.Pending(), b.Dropped())
	}
	sink.setFailing(false)
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if a := sink.total("a"); a.Requests != 3 || a.CacheHits != 1 {
		t.Fatalf("a = %+v, want 3 requests and 1 cache hit", a)
	}
	if sink.total("b").Requests != 1 || sink.total("c").Requests != 1 || sink.total("d").Requests != 0 {
		t.Fatalf("totals: %+v", sink.totals)
	}
}

func TestUsageBatcherRunFlushesOnIntervalAndSize(t *testing.T) {
	t.Parallel()
	sink := newFakeSink()
	// A long interval: only the size trigger can flush within the test.
	b := NewUsageBatcher(sink.AddUsage, UsageOptions{FlushInterval: time.Hour, FlushSize: 3})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { b.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	b.Record("a", false)
	b.Record("b", false)
	b.Record("c", false)
	select {
	case <-sink.flushed:
	case <-time.After(10 * time.Second):
		t.Fatal("size trigger did not flush")
	}

	sink2 := newFakeSink()
	b2 := NewUsageBatcher(sink2.AddUsage, UsageOptions{FlushInterval: 10 * time.Millisecond})
	wg.Go(func() { b2.Run(ctx) })
	b2.Record("x", false)
	select {
	case <-sink2.flushed:
	case <-time.After(10 * time.Second):
		t.Fatal("interval did not flush")
	}
	if sink2.total("x").Requests != 1 {
		t.Fatal("wrong count")
	}
}

func TestUsageBatcherCloseGivesUpAtDeadline(t *testing.T) {
	t.Parallel()
	sink := newFakeSink()
	sink.setFailing(true)
	b := NewUsageBatcher(sink.AddUsage, UsageOptions{})
	b.Record("a", false)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := b.Close(ctx); err == nil {
		t.Fatal("Close against a failing sink returned nil")
	}
	if b.Pending() != 1 {
		t.Fatal("deltas lost")
	}
}

func BenchmarkUsageRecord(b *testing.B) {
	u := NewUsageBatcher(func(context.Context, []store.UsageDelta) error { return nil }, UsageOptions{})
	u.Record("t1", false)
	b.ReportAllocs()
	for b.Loop() {
		u.Record("t1", false)
	}
}
