package events

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
)

// batchRecorder is a subscriber that records each request: its mode and the
// ids of the events it carried; status answers each request (200 when nil).
type batchRecorder struct {
	mu     sync.Mutex
	reqs   []string // "batch:[a b]" or "binary:a"
	status func(n int) int
}

func (rec *batchRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var entry string
	if cehttp.IsHTTPBatch(r.Header) {
		evs, err := cehttp.NewEventsFromHTTPRequest(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ids := make([]string, len(evs))
		for i := range evs {
			if err := evs[i].Validate(); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			ids[i] = evs[i].ID()
		}
		entry = fmt.Sprintf("batch:%v", ids)
	} else {
		if r.Header.Get("Ce-Specversion") != "1.0" {
			http.Error(w, "not binary mode", http.StatusBadRequest)
			return
		}
		entry = "binary:" + r.Header.Get("Ce-Id")
	}
	rec.mu.Lock()
	rec.reqs = append(rec.reqs, entry)
	n := len(rec.reqs)
	rec.mu.Unlock()
	code := http.StatusOK
	if rec.status != nil {
		code = rec.status(n)
	}
	w.WriteHeader(code)
}

func (rec *batchRecorder) got() string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return strings.Join(rec.reqs, " ")
}

func tokenEvent(t *testing.T, id, project string) event.Event {
	t.Helper()
	ev, err := NewTokenCreatedEvent("/m", id, TokenChanged{TokenID: "t", ProjectID: project, At: time.Unix(1, 0)})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func requestEventFor(t *testing.T, id string) event.Event {
	t.Helper()
	ev, err := NewRequestCompletedEvent(DefaultSource, BuildRequestCompleted(sampleInfo(id), true))
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestBrokerBatchesPerTrigger(t *testing.T) {
	all, reqs, single, p1 := &batchRecorder{}, &batchRecorder{}, &batchRecorder{}, &batchRecorder{}
	servers := map[string]*httptest.Server{}
	for name, h := range map[string]http.Handler{"all": all, "reqs": reqs, "single": single, "p1": p1} {
		servers[name] = httptest.NewServer(h)
		defer servers[name].Close()
	}
	b := NewBroker(BrokerOptions{Retries: 1, Backoff: time.Millisecond}, nil)
	b.Subscribe(Trigger{Name: "all", Subscriber: servers["all"].URL, Batch: true})
	b.Subscribe(Trigger{Name: "reqs", Filter: map[string]string{"type": TypeRequestCompleted}, Subscriber: servers["reqs"].URL, Batch: true})
	b.Subscribe(Trigger{Name: "single", Filter: map[string]string{"type": TypeRequestCompleted}, Subscriber: servers["single"].URL})
	b.Subscribe(Trigger{Name: "p1", Filter: map[string]string{"type": TypeTokenCreated, ExtProjectID: "p1"}, Subscriber: servers["p1"].URL, Batch: true})

	evs := []event.Event{requestEventFor(t, "r1"), tokenEvent(t, "t1", "p1"), requestEventFor(t, "r2"), tokenEvent(t, "t2", "p2"), requestEventFor(t, "r3")}
	if err := b.Publish(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	// A later Publish with one matching event goes in binary mode.
	if err := b.Publish(context.Background(), []event.Event{requestEventFor(t, "r4")}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		rec  *batchRecorder
		want string
	}{
		{"all", all, "batch:[r1 t1 r2 t2 r3] binary:r4"},
		{"reqs", reqs, "batch:[r1 r2 r3] binary:r4"},
		{"single", single, "binary:r1 binary:r2 binary:r3 binary:r4"},
		{"p1", p1, "binary:t1"}, // the one matching event of its batch
	} {
		if got := tc.rec.got(); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestBrokerBatchDeliveryFailures(t *testing.T) {
	evs := []event.Event{requestEventFor(t, "r1"), tokenEvent(t, "t1", "p1"), requestEventFor(t, "r2")}
	for _, tc := range []struct {
		name      string
		status    func(n int) int
		want      string // requests the subscriber saw
		wantErr   bool
		permanent bool
	}{
		{
			name: "retried until accepted",
			status: func(n int) int {
				if code, ok := map[int]int{1: http.StatusServiceUnavailable, 2: http.StatusTooManyRequests}[n]; ok {
					return code
				}
				return http.StatusOK
			},
			want: "batch:[r1 r2] batch:[r1 r2] batch:[r1 r2]",
		},
		{
			name:    "retries exhausted",
			status:  func(int) int { return http.StatusInternalServerError },
			want:    "batch:[r1 r2] batch:[r1 r2] batch:[r1 r2] batch:[r1 r2]",
			wantErr: true,
		},
		{
			name:      "4xx is permanent",
			status:    func(int) int { return http.StatusBadRequest },
			want:      "batch:[r1 r2]",
			wantErr:   true,
			permanent: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &batchRecorder{status: tc.status}
			srv := httptest.NewServer(rec)
			defer srv.Close()
			b := NewBroker(BrokerOptions{Retries: 3, Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}, nil)
			b.Subscribe(Trigger{Name: "reqs", Filter: map[string]string{"type": TypeRequestCompleted}, Subscriber: srv.URL, Batch: true})
			err := b.Publish(context.Background(), evs)
			if got := rec.got(); got != tc.want {
				t.Fatalf("requests: got %q, want %q", got, tc.want)
			}
			if !tc.wantErr {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			be, ok := err.(*BatchError)
			if !ok || len(be.Errs) != len(evs) {
				t.Fatalf("want a *BatchError for %d events, got %v", len(evs), err)
			}
			// The events of the failed request carry the error; the token
			// event (no matching trigger) does not.
			if be.Errs[0] == nil || be.Errs[1] != nil || be.Errs[2] == nil {
				t.Fatalf("errors per event: %v", be.Errs)
			}
			if IsPermanent(be.Errs[0]) != tc.permanent {
				t.Fatalf("permanent = %v, want %v (%v)", IsPermanent(be.Errs[0]), tc.permanent, be.Errs[0])
			}
		})
	}
}

func TestBrokerSplitsBatchesBySize(t *testing.T) {
	rec := &batchRecorder{}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	var evs []event.Event
	for i := range 5 {
		evs = append(evs, tokenEvent(t, fmt.Sprintf("t%d", i), "p1"))
	}
	one, err := evs[0].MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	// Room for two events per request (the ids have the same length).
	b := NewBroker(BrokerOptions{MaxBatchBytes: 2*len(one) + 3}, nil)
	b.Subscribe(Trigger{Name: "all", Subscriber: srv.URL, Batch: true})
	if err := b.Publish(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	if got, want := rec.got(), "batch:[t0 t1] batch:[t2 t3] binary:t4"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
