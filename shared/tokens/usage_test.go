package tokens

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/llm-proxy/llm-proxy/internal/testenv"
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
		t.ProjectID = d.ProjectID
		t.Requests += d.Requests
		t.CacheHits += d.CacheHits
		t.PromptTokens += d.PromptTokens
		t.CompletionTokens += d.CompletionTokens
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
	c := testenv.NewClock(time.Time{})
	b := NewUsageBatcher(sink.AddUsage, UsageOptions{Now: c.Now})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 250 {
				if i%5 == 0 {
					b.Record(fmt.Sprintf("t%d", g%2), "p", true, 0, 0)
				} else {
					b.Record(fmt.Sprintf("t%d", g%2), "p", false, 3, 2)
				}
			}
		})
	}
	wg.Wait()
	c.Advance(time.Second)
	b.Record("t0", "p", false, 1, 1)
	if err := b.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(sink.batches) != 1 || len(sink.batches[0]) != 2 {
		t.Fatalf("batches = %v, want one batch with one delta per token", sink.batches)
	}
	t0, t1 := sink.total("t0"), sink.total("t1")
	if t0.Requests != 1001 || t0.CacheHits != 200 || t1.Requests != 1000 || t1.CacheHits != 200 ||
		t0.PromptTokens != 2401 || t0.CompletionTokens != 1601 || t1.PromptTokens != 2400 || t1.CompletionTokens != 1600 ||
		t0.ProjectID != "p" || t1.ProjectID != "p" {
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
	b.Record("a", "p", false, 10, 5)
	b.Record("a", "p", true, 0, 0)
	b.Record("b", "p", false, 0, 0)
	sink.setFailing(true)
	if err := b.Flush(ctx); err == nil {
		t.Fatal("flush against a failing sink succeeded")
	}
	// Counting goes on while the sink is down; the bound holds.
	b.Record("a", "p", false, 1, 2)
	b.Record("c", "p", false, 0, 0)
	b.Record("d", "p", false, 0, 0) // fourth token: dropped
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
	if a := sink.total("a"); a.Requests != 3 || a.CacheHits != 1 || a.PromptTokens != 11 || a.CompletionTokens != 7 {
		t.Fatalf("a = %+v, want 3 requests, 1 cache hit, 11 prompt and 7 completion tokens", a)
	}
	if sink.total("b").Requests != 1 || sink.total("c").Requests != 1 || sink.total("d").Requests != 0 {
		t.Fatalf("totals: %+v", sink.totals)
	}
}

// A delta never spans an hour: the store buckets hourly usage by its
// LastUsedAt.
func TestUsageBatcherSplitsHours(t *testing.T) {
	t.Parallel()
	sink := newFakeSink()
	c := testenv.NewClock(time.Time{}) // 03:04:05 UTC
	b := NewUsageBatcher(sink.AddUsage, UsageOptions{Now: c.Now})
	b.Record("a", "p", false, 1, 1)
	c.Advance(55*time.Minute + 54*time.Second) // 03:59:59
	b.Record("a", "p", true, 0, 0)
	b.Record("b", "", false, 0, 0) // no project: token only
	c.Advance(time.Second)         // 04:00:00
	b.Record("a", "p", false, 2, 3)
	if b.Pending() != 3 {
		t.Fatalf("pending = %d, want 3 (a at 03h and 04h, b at 03h)", b.Pending())
	}
	// A failed flush keeps the hours apart.
	sink.setFailing(true)
	if err := b.Flush(context.Background()); err == nil {
		t.Fatal("flush against a failing sink succeeded")
	}
	c.Advance(time.Minute) // 04:01:00
	b.Record("a", "p", false, 4, 4)
	if b.Pending() != 3 {
		t.Fatalf("pending after failed flush = %d, want 3", b.Pending())
	}
	sink.setFailing(false)
	if err := b.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	three := time.Date(2026, 1, 2, 3, 59, 59, 0, time.UTC)
	four := time.Date(2026, 1, 2, 4, 1, 0, 0, time.UTC)
	want := map[string]store.UsageDelta{
		"a@03": {TokenID: "a", ProjectID: "p", Requests: 2, CacheHits: 1, PromptTokens: 1, CompletionTokens: 1, LastUsedAt: three},
		"a@04": {TokenID: "a", ProjectID: "p", Requests: 2, PromptTokens: 6, CompletionTokens: 7, LastUsedAt: four},
		"b@03": {TokenID: "b", Requests: 1, LastUsedAt: three},
	}
	if len(sink.batches) != 1 || len(sink.batches[0]) != len(want) {
		t.Fatalf("batches = %+v, want one batch of %d deltas", sink.batches, len(want))
	}
	for _, d := range sink.batches[0] {
		k := fmt.Sprintf("%s@%02d", d.TokenID, d.LastUsedAt.Hour())
		if w, ok := want[k]; !ok || !d.LastUsedAt.Equal(w.LastUsedAt) || d.TokenID != w.TokenID || d.ProjectID != w.ProjectID ||
			d.Requests != w.Requests || d.CacheHits != w.CacheHits || d.PromptTokens != w.PromptTokens || d.CompletionTokens != w.CompletionTokens {
			t.Errorf("delta %s = %+v, want %+v", k, d, w)
		}
	}
}

func TestHourOf(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		t    time.Time
		want int64
	}{
		{time.Unix(0, 0), 0},
		{time.Unix(3599, 999), 0},
		{time.Unix(3600, 0), 1},
		{time.Unix(-1, 0), -1},
		{time.Unix(-3600, 0), -1},
		{time.Unix(-3601, 0), -2},
		{time.Date(2026, 1, 2, 4, 0, 0, 0, time.FixedZone("x", -7*3600)), time.Date(2026, 1, 2, 11, 0, 0, 0, time.UTC).Unix() / 3600},
	} {
		if got := hourOf(tc.t); got != tc.want {
			t.Errorf("hourOf(%v) = %d, want %d", tc.t, got, tc.want)
		}
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
	b.Record("a", "p", false, 0, 0)
	b.Record("b", "p", false, 0, 0)
	b.Record("c", "p", false, 0, 0)
	select {
	case <-sink.flushed:
	case <-time.After(10 * time.Second):
		t.Fatal("size trigger did not flush")
	}

	sink2 := newFakeSink()
	b2 := NewUsageBatcher(sink2.AddUsage, UsageOptions{FlushInterval: 10 * time.Millisecond})
	wg.Go(func() { b2.Run(ctx) })
	b2.Record("x", "p", false, 0, 0)
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
	synctest.Test(t, func(t *testing.T) {
		sink := newFakeSink()
		sink.setFailing(true)
		b := NewUsageBatcher(sink.AddUsage, UsageOptions{})
		b.Record("a", "p", false, 0, 0)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if err := b.Close(ctx); err == nil {
			t.Fatal("Close against a failing sink returned nil")
		}
		if b.Pending() != 1 {
			t.Fatal("deltas lost")
		}
	})
}

func BenchmarkUsageRecord(b *testing.B) {
	u := NewUsageBatcher(func(context.Context, []store.UsageDelta) error { return nil }, UsageOptions{})
	u.Record("t1", "p", false, 0, 0)
	b.ReportAllocs()
	for b.Loop() {
		u.Record("t1", "p", false, 0, 0)
	}
}
