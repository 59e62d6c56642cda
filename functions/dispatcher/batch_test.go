package dispatcher

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/llm-proxy/llm-proxy/events"
)

// perEventBackend fails the events whose ids are in failing (transiently),
// per event, as a backend reporting a *events.BatchError does.
type perEventBackend struct {
	mu      sync.Mutex
	got     map[string]int
	calls   int
	failing map[string]bool
	once    bool // failing applies to the next call only
}

func (b *perEventBackend) Name() string          { return "per-event" }
func (b *perEventBackend) Accepts(t string) bool { return t == events.TypeRequestCompleted }
func (b *perEventBackend) Deliver(_ context.Context, recs []Record) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls++
	if b.got == nil {
		b.got = map[string]int{}
	}
	errs := make([]error, len(recs))
	failed := false
	for i, r := range recs {
		if b.failing[r.Event.ID()] {
			errs[i], failed = errors.New("backend hiccup"), true
			continue
		}
		b.got[r.Event.ID()]++
	}
	if b.once {
		b.failing = nil
	}
	if failed {
		return &events.BatchError{Errs: errs}
	}
	return nil
}

func (b *perEventBackend) count(id string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.got[id]
}

func (b *perEventBackend) setFailing(ids ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failing = map[string]bool{}
	for _, id := range ids {
		b.failing[id] = true
	}
}

func postBody(t *testing.T, url, contentType string, body []byte) int {
	t.Helper()
	resp, err := http.Post(url, contentType, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func postBatch(t *testing.T, url string, evs ...event.Event) int {
	t.Helper()
	body, err := json.Marshal(evs)
	if err != nil {
		t.Fatal(err)
	}
	return postBody(t, url, event.ApplicationCloudEventsBatchJSON, body)
}

func TestHandlerAcceptsBatches(t *testing.T) {
	for name, dd := range dedupers(t) {
		t.Run(name, func(t *testing.T) {
			b := &perEventBackend{}
			d, err := New(Deps{Backend: b, Dedup: dd})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(d.Handler())
			defer srv.Close()
			ev := func(id string) event.Event { return requestEvent(t, id+"-"+name) }
			counts := func(want map[string]int) {
				t.Helper()
				for id, n := range want {
					if got := b.count(id + "-" + name); got != n {
						t.Errorf("%s delivered %d times, want %d", id, got, n)
					}
				}
			}

			// Duplicates within a batch: delivered once.
			if c := postBatch(t, srv.URL, ev("a"), ev("b"), ev("a")); c != http.StatusOK {
				t.Fatalf("batch: %d", c)
			}
			counts(map[string]int{"a": 1, "b": 1})

			// Duplicates across batches (and a single event after a batch).
			if c := postBatch(t, srv.URL, ev("a"), ev("c")); c != http.StatusOK {
				t.Fatalf("second batch: %d", c)
			}
			if c := postEvent(t, srv.URL, ev("b")); c != http.StatusOK {
				t.Fatalf("single redelivery: %d", c)
			}
			counts(map[string]int{"a": 1, "b": 1, "c": 1})

			// Partial failure → 503; redelivering the whole batch delivers
			// the failed one and not the other again.
			b.setFailing(ev("e").ID())
			if c := postBatch(t, srv.URL, ev("d"), ev("e")); c != http.StatusServiceUnavailable {
				t.Fatalf("partial failure: %d", c)
			}
			counts(map[string]int{"d": 1, "e": 0})
			b.setFailing()
			if c := postBatch(t, srv.URL, ev("d"), ev("e")); c != http.StatusOK {
				t.Fatalf("redelivery: %d", c)
			}
			counts(map[string]int{"d": 1, "e": 1})

			// Only a delivery under way elsewhere → 429.
			f := ev("f")
			if _, err := dd.Claim(context.Background(), []string{Key(&f)}, "other"); err != nil {
				t.Fatal(err)
			}
			if c := postBatch(t, srv.URL, f, ev("g")); c != http.StatusTooManyRequests {
				t.Fatalf("in flight: %d", c)
			}
			counts(map[string]int{"f": 0, "g": 1})

			// A poison event (and no retryable failure) → 400; the good
			// event is delivered all the same.
			unknown := ev("u")
			unknown.SetType("io.llmproxy.nonsense.v9")
			if c := postBatch(t, srv.URL, ev("h"), unknown); c != http.StatusBadRequest {
				t.Fatalf("poison in batch: %d", c)
			}
			counts(map[string]int{"h": 1})

			// Types the backend does not take, an empty batch, and a media
			// type with parameters.
			tok, _ := events.NewTokenCreatedEvent("/m", "tok-"+name, events.TokenChanged{TokenID: "t", ProjectID: "p", At: time.Now()})
			if c := postBatch(t, srv.URL, tok, ev("i")); c != http.StatusOK {
				t.Fatalf("unsupported type in batch: %d", c)
			}
			if c := postBody(t, srv.URL, event.ApplicationCloudEventsBatchJSON, []byte(`[]`)); c != http.StatusOK {
				t.Fatalf("empty batch: %d", c)
			}
			body, _ := json.Marshal([]event.Event{ev("j")})
			if c := postBody(t, srv.URL, event.ApplicationCloudEventsBatchJSON+"; charset=utf-8", body); c != http.StatusOK {
				t.Fatalf("batch with charset: %d", c)
			}
			counts(map[string]int{"i": 1, "j": 1})

			// Undecodable batches → 400, nothing reaches the backend.
			b.mu.Lock()
			calls := b.calls
			b.mu.Unlock()
			for _, bad := range []string{`[{"specversion":`, `{"not":"an array"}`, `[{"specversion":"1.0","id":"x"}]`, `[{"specversion":"0.1","id":"x","type":"t","source":"/s"}]`} {
				if c := postBody(t, srv.URL, event.ApplicationCloudEventsBatchJSON, []byte(bad)); c != http.StatusBadRequest {
					t.Errorf("undecodable %s: %d", bad, c)
				}
			}
			b.mu.Lock()
			if b.calls != calls {
				t.Errorf("backend called for undecodable batches")
			}
			b.mu.Unlock()
		})
	}
}

// The broker's batch requests reach the dispatcher as one backend delivery.
func TestBrokerBatchesToHandler(t *testing.T) {
	b := &perEventBackend{}
	d, err := New(Deps{Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	br := events.NewBroker(events.BrokerOptions{Retries: 2, Backoff: time.Millisecond}, nil)
	br.Subscribe(events.Trigger{Name: "d", Subscriber: srv.URL, Batch: true})
	evs := []event.Event{requestEvent(t, "k1"), requestEvent(t, "k2"), requestEvent(t, "k3")}

	b.setFailing("k2") // first request 503, the broker's retry succeeds
	b.once = true
	if err := br.Publish(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	if b.calls != 2 {
		t.Errorf("backend called %d times, want 2 (one batch, one retry)", b.calls)
	}
	for _, id := range []string{"k1", "k2", "k3"} {
		if n := b.count(id); n != 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}
}

// TestHandlerBoundsBodies: one event or a batch larger than Deps.MaxBody is
// answered 413 and not delivered; smaller ones are.
func TestHandlerBoundsBodies(t *testing.T) {
	b := &perEventBackend{}
	d, err := New(Deps{Backend: b, MaxBody: 4096})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	padded := func(id string, pad int) event.Event {
		ev := requestEvent(t, id)
		var data map[string]any
		if err := json.Unmarshal(ev.Data(), &data); err != nil {
			t.Fatal(err)
		}
		data["pad"] = strings.Repeat("x", pad) // in the body in binary and structured mode
		if err := ev.SetData("application/json", data); err != nil {
			t.Fatal(err)
		}
		return ev
	}
	for _, tc := range []struct {
		name string
		post func() int
		id   string
		want int
	}{
		{"event", func() int { return postEvent(t, srv.URL, padded("small", 0)) }, "small", http.StatusOK},
		{"event over", func() int { return postEvent(t, srv.URL, padded("big", 8192)) }, "big", http.StatusRequestEntityTooLarge},
		{"batch over", func() int { return postBatch(t, srv.URL, padded("b1", 3000), padded("b2", 3000)) }, "b1", http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.post(); got != tc.want {
				t.Fatalf("status %d, want %d", got, tc.want)
			}
			if delivered := b.count(tc.id) == 1; delivered != (tc.want == http.StatusOK) {
				t.Fatalf("delivered = %v, want %v", delivered, tc.want == http.StatusOK)
			}
		})
	}
}
