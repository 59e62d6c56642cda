package events

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// localRecorder is an in-process subscriber that records each call (the ids
// it was handed) and answers with fail(call, id) per event.
type localRecorder struct {
	mu    sync.Mutex
	calls []string
	fail  func(call int, id string) error
}

func (rec *localRecorder) deliver(_ context.Context, evs []event.Event) []error {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	ids := make([]string, len(evs))
	for i := range evs {
		ids[i] = evs[i].ID()
	}
	rec.calls = append(rec.calls, fmt.Sprint(ids))
	if rec.fail == nil {
		return nil
	}
	var errs []error
	for i := range evs {
		if err := rec.fail(len(rec.calls), evs[i].ID()); err != nil {
			if errs == nil {
				errs = make([]error, len(evs))
			}
			errs[i] = err
		}
	}
	return errs
}

func (rec *localRecorder) got() string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return strings.Join(rec.calls, " ")
}

func collectorValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestBrokerInProcessTriggersFilterAndBatch(t *testing.T) {
	all, reqs, p1 := &localRecorder{}, &localRecorder{}, &localRecorder{}
	reg := prometheus.NewRegistry()
	b := NewBroker(BrokerOptions{Registerer: reg}, nil)
	b.Subscribe(Trigger{Name: "all", Deliver: all.deliver})
	b.Subscribe(Trigger{Name: "reqs", Filter: map[string]string{"type": TypeRequestCompleted}, Deliver: reqs.deliver})
	b.Subscribe(Trigger{Name: "p1", Filter: map[string]string{"type": TypeTokenCreated, ExtProjectID: "p1"}, Deliver: p1.deliver})

	evs := []event.Event{requestEventFor(t, "r1"), tokenEvent(t, "t1", "p1"), requestEventFor(t, "r2"), tokenEvent(t, "t2", "p2"), requestEventFor(t, "r3")}
	if err := b.Publish(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(context.Background(), []event.Event{requestEventFor(t, "r4")}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		rec  *localRecorder
		want string
	}{
		{"all", all, "[r1 t1 r2 t2 r3] [r4]"},
		{"reqs", reqs, "[r1 r2 r3] [r4]"},
		{"p1", p1, "[t1]"},
	} {
		if got := tc.rec.got(); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
	if got := collectorValue(t, b.delivered); got != 11 { // 5+3+1, then r4 twice
		t.Errorf("delivered = %v, want 11", got)
	}
	if got := collectorValue(t, b.failed); got != 0 {
		t.Errorf("failed = %v, want 0", got)
	}
}

func TestBrokerInProcessFailures(t *testing.T) {
	evs := []event.Event{requestEventFor(t, "r1"), tokenEvent(t, "t1", "p1"), requestEventFor(t, "r2"), requestEventFor(t, "r3")}
	hiccup := errors.New("hiccup")
	for _, tc := range []struct {
		name      string
		fail      func(call int, id string) error
		want      string   // calls the subscriber saw
		wantErrs  []string // per event of evs: "" delivered, "retry" or "permanent"
		delivered float64
	}{
		{
			name: "only the failed events are retried",
			fail: func(call int, id string) error {
				if id == "r2" && call < 3 {
					return hiccup
				}
				return nil
			},
			want:      "[r1 r2 r3] [r2] [r2]",
			wantErrs:  []string{"", "", "", ""},
			delivered: 3,
		},
		{
			name: "retries exhausted",
			fail: func(_ int, id string) error {
				if id == "r3" {
					return hiccup
				}
				return nil
			},
			want:      "[r1 r2 r3] [r3] [r3] [r3]",
			wantErrs:  []string{"", "", "", "retry"},
			delivered: 2,
		},
		{
			name: "permanent errors are not retried",
			fail: func(_ int, id string) error {
				switch id {
				case "r1":
					return Permanent(errors.New("poison"))
				case "r3":
					return hiccup
				}
				return nil
			},
			want:      "[r1 r2 r3] [r3] [r3] [r3]",
			wantErrs:  []string{"permanent", "", "", "retry"},
			delivered: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &localRecorder{fail: tc.fail}
			b := NewBroker(BrokerOptions{Retries: 3, Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Registerer: prometheus.NewRegistry()}, nil)
			b.Subscribe(Trigger{Name: "reqs", Filter: map[string]string{"type": TypeRequestCompleted}, Deliver: rec.deliver})
			err := b.Publish(context.Background(), evs)
			if got := rec.got(); got != tc.want {
				t.Fatalf("calls: got %q, want %q", got, tc.want)
			}
			if got := collectorValue(t, b.delivered); got != tc.delivered {
				t.Errorf("delivered = %v, want %v", got, tc.delivered)
			}
			failures := 0
			for _, w := range tc.wantErrs {
				if w != "" {
					failures++
				}
			}
			if got := collectorValue(t, b.failed); got != float64(failures) {
				t.Errorf("failed = %v, want %d", got, failures)
			}
			if failures == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			be, ok := err.(*BatchError)
			if !ok || len(be.Errs) != len(evs) {
				t.Fatalf("want a *BatchError for %d events, got %v", len(evs), err)
			}
			for i, w := range tc.wantErrs {
				got := ""
				switch e := be.Errs[i]; {
				case e == nil:
				case IsPermanent(e):
					got = "permanent"
				default:
					got = "retry"
				}
				if got != w {
					t.Errorf("event %s: error %q (%v), want %q", evs[i].ID(), got, be.Errs[i], w)
				}
			}
		})
	}
}

func TestBrokerInProcessSplitsBySize(t *testing.T) {
	rec := &localRecorder{}
	var evs []event.Event
	for i := range 5 {
		evs = append(evs, tokenEvent(t, fmt.Sprintf("t%d", i), "p1"))
	}
	// Room for the data of two events per call (same length each).
	b := NewBroker(BrokerOptions{MaxBatchBytes: 2*len(evs[0].Data()) + 1}, nil)
	b.Subscribe(Trigger{Name: "all", Deliver: rec.deliver})
	if err := b.Publish(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	if got, want := rec.got(), "[t0 t1] [t2 t3] [t4]"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestBrokerInProcessSubscriberMisbehaves(t *testing.T) {
	for _, tc := range []struct {
		name    string
		deliver DeliverFunc
	}{
		{"panics", func(context.Context, []event.Event) []error { panic("boom") }},
		{"wrong number of results", func(context.Context, []event.Event) []error { return []error{nil} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBroker(BrokerOptions{Retries: -1}, nil)
			b.Subscribe(Trigger{Name: "bad", Deliver: tc.deliver})
			evs := []event.Event{requestEventFor(t, "r1"), requestEventFor(t, "r2")}
			err := b.Publish(context.Background(), evs)
			be, ok := err.(*BatchError)
			if !ok || len(be.Errs) != 2 || be.Errs[0] == nil || be.Errs[1] == nil || IsPermanent(be.Errs[0]) {
				t.Fatalf("want a retryable error for both events, got %v", err)
			}
		})
	}
}

func TestBrokerInProcessGivesUpWhenContextEnds(t *testing.T) {
	rec := &localRecorder{fail: func(int, string) error { return errors.New("down") }}
	b := NewBroker(BrokerOptions{Retries: 5, Backoff: time.Hour}, nil)
	b.Subscribe(Trigger{Name: "down", Deliver: rec.deliver})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := b.Publish(ctx, []event.Event{requestEventFor(t, "r1")})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want the context's error, got %v", err)
	}
	if got := rec.got(); got != "[r1]" {
		t.Fatalf("calls: %q", got)
	}
}

func TestEmitterOverInProcessBroker(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	flaky := true
	b := NewBroker(BrokerOptions{Backoff: time.Millisecond}, nil)
	b.Subscribe(Trigger{Name: "all", Deliver: func(_ context.Context, evs []event.Event) []error {
		mu.Lock()
		defer mu.Unlock()
		if flaky { // the first call fails as a whole, transiently
			flaky = false
			return all(len(evs), errors.New("not yet"))
		}
		for i := range evs {
			seen[evs[i].ID()]++
		}
		return nil
	}})
	e := NewEmitter(b, EmitterOptions{}, nil)
	for i := range 50 {
		e.RequestCompleted(sampleInfo(fmt.Sprintf("r%d", i)))
	}
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 50 || e.Published() != 50 || e.Dropped() != 0 {
		t.Fatalf("subscriber got %d distinct events, published %d, dropped %d", len(seen), e.Published(), e.Dropped())
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("%s delivered %d times", id, n)
		}
	}
}
