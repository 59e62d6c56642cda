package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/llm-proxy/llm-proxy/internal/testenv"
)

// sink is a real HTTP event receiver that deduplicates on (source, id) as
// the dispatcher does and can be taken down: refusing connections (its
// listener closed) or answering 503.
type sink struct {
	t    *testing.T
	addr string

	mu       sync.Mutex
	srv      *http.Server
	status   int      // 0: accept
	order    []string // ids in the order they first arrived
	seen     map[string]bool
	received int // deliveries, duplicates included
}

func newSink(t *testing.T) *sink {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{t: t, addr: ln.Addr().String(), seen: map[string]bool{}}
	s.serve(ln)
	t.Cleanup(func() { s.setDown(true) })
	return s
}

func (s *sink) URL() string { return "http://" + s.addr + "/" }

func (s *sink) serve(ln net.Listener) {
	s.srv = &http.Server{Handler: http.HandlerFunc(s.handle), ReadHeaderTimeout: 5 * time.Second}
	go func(srv *http.Server) { _ = srv.Serve(ln) }(s.srv)
}

func (s *sink) handle(w http.ResponseWriter, r *http.Request) {
	ev, err := cloudevents.NewEventFromHTTPRequest(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.status != 0 {
		w.WriteHeader(s.status)
		return
	}
	s.received++
	if key := ev.Source() + "\x00" + ev.ID(); !s.seen[key] {
		s.seen[key] = true
		s.order = append(s.order, ev.ID())
	}
	w.WriteHeader(http.StatusAccepted)
}

// setDown closes the listener (connections are refused) or listens again
// on the same address.
func (s *sink) setDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if down {
		if s.srv != nil {
			_ = s.srv.Close()
			s.srv = nil
		}
		return
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.t.Fatal(err)
	}
	s.serve(ln)
}

func (s *sink) setStatus(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = code
}

// outage takes the sink down the given way; the returned func brings it back.
func (s *sink) outage(how string) (back func()) {
	if how == "refuses connections" {
		s.setDown(true)
		return func() { s.setDown(false) }
	}
	s.setStatus(http.StatusServiceUnavailable)
	return func() { s.setStatus(0) }
}

func (s *sink) got() (order []string, received int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.order...), s.received
}

func (s *sink) waitFor(n int) {
	s.t.Helper()
	waitUntil(s.t, fmt.Sprintf("%d events at the sink", n), func() bool { order, _ := s.got(); return len(order) >= n })
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// checkDelivered fails unless the sink got r00 … r<n-1>, each once, in order.
func (s *sink) checkDelivered(n int) {
	s.t.Helper()
	order, received := s.got()
	want := make([]string, n)
	for i := range want {
		want[i] = fmt.Sprintf("r%02d", i)
	}
	if strings.Join(order, " ") != strings.Join(want, " ") {
		s.t.Fatalf("sink got (first arrivals)\n%v\nwant\n%v", order, want)
	}
	if received != n {
		s.t.Fatalf("sink took %d deliveries for %d events", received, n)
	}
}

// fastOutbox retries within milliseconds: an outage of a few hundred
// milliseconds outlasts them many times over.
func fastOutbox(ob Outbox, reg prometheus.Registerer) EmitterOptions {
	return EmitterOptions{
		BatchSize: 8, Retries: 2, RetryBackoff: 2 * time.Millisecond, OutboxRetry: 10 * time.Millisecond,
		Outbox: ob, Registerer: reg,
	}
}

func emit(e *Emitter, from, to int) {
	for i := from; i < to; i++ {
		e.RequestCompleted(sampleInfo(fmt.Sprintf("r%02d", i)))
	}
}

func httpPublisher(t *testing.T, s *sink) Publisher {
	pub, err := NewHTTPPublisher(s.URL(), &http.Client{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// A sink that is down for longer than the retries loses nothing: what the
// retries could not deliver waits in the outbox, events emitted meanwhile
// queue behind it, and when the sink is back everything arrives, once and
// in order.
func TestEmitterOutboxRidesOutSinkOutage(t *testing.T) {
	for _, kind := range outboxKinds() {
		for _, how := range []string{"refuses connections", "answers 503"} {
			t.Run(kind.name+"/"+how, func(t *testing.T) {
				s := newSink(t)
				reg := prometheus.NewRegistry()
				e := NewEmitter(httpPublisher(t, s), fastOutbox(kind.open(t, 0)(), reg), nil)
				emit(e, 0, 10)
				s.waitFor(10)

				back := s.outage(how)
				emit(e, 10, 40)
				// All 30 in the outbox: the first batch after its retries, the
				// rest behind it; the drain attempts keep failing meanwhile.
				waitUntil(t, "30 events in the outbox", func() bool { return e.Outboxed() >= 30 })
				if e.Dropped() != 0 {
					t.Fatalf("%d events dropped during the outage", e.Dropped())
				}
				back()
				emit(e, 40, 50)
				s.waitFor(50)
				if err := e.Close(context.Background()); err != nil {
					t.Fatal(err)
				}
				s.checkDelivered(50)
				if d := e.Dropped(); d != 0 {
					t.Fatalf("dropped %d", d)
				}
				if v := testenv.Counter(t, reg, "llm_proxy_events_outboxed_total"); v < 30 {
					t.Fatalf("llm_proxy_events_outboxed_total = %v", v)
				}
			})
		}
	}
}

// What the outbox holds when the process stops is delivered by the next
// one: Close does not wait out a dead sink, and a new Emitter over the same
// outbox (directory, Redis key) delivers the old one's events before its
// own.
func TestEmitterOutboxSurvivesRestart(t *testing.T) {
	for _, kind := range outboxKinds() {
		if kind.name == "memory" {
			continue // lost with the process, as documented
		}
		t.Run(kind.name, func(t *testing.T) {
			s := newSink(t)
			open := kind.open(t, 0)
			back := s.outage("refuses connections")

			first := NewEmitter(httpPublisher(t, s), fastOutbox(open(), nil), nil)
			emit(first, 0, 20)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			start := time.Now()
			if err := first.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Fatalf("Close took %v with the sink down", took)
			}
			if first.Outboxed() != 20 || first.Dropped() != 0 {
				t.Fatalf("first process: %d in the outbox, %d dropped", first.Outboxed(), first.Dropped())
			}

			back()
			second := NewEmitter(httpPublisher(t, s), fastOutbox(open(), nil), nil)
			emit(second, 20, 25)
			s.waitFor(25)
			if err := second.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			s.checkDelivered(25)
		})
	}
}

// Past its bound the outbox refuses events: those, and only those, are
// dropped, counted (reason outbox_full) and logged; the ones it kept arrive.
func TestEmitterOutboxBound(t *testing.T) {
	s := newSink(t)
	back := s.outage("answers 503")
	dir := t.TempDir()
	per := encodedSize(t, outboxEvents(t, 0, 1)[0]) + fileOutboxRecord
	open := func() Outbox {
		ob, err := OpenFileOutbox(dir, 5*per, nil)
		if err != nil {
			t.Fatal(err)
		}
		return ob
	}
	reg := prometheus.NewRegistry()
	var logs testenv.Buffer
	first := NewEmitter(httpPublisher(t, s), fastOutbox(open(), reg), slog.New(slog.NewTextHandler(&logs, nil)))
	emit(first, 0, 20)
	if err := first.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if first.Outboxed() != 5 || first.Dropped() != 15 {
		t.Fatalf("outboxed %d, dropped %d; want 5 and 15", first.Outboxed(), first.Dropped())
	}
	if v := testenv.Counter(t, reg, "llm_proxy_events_dropped_total", "reason", DropOutboxFull); v != 15 {
		t.Fatalf("llm_proxy_events_dropped_total{reason=outbox_full} = %v", v)
	}
	if !strings.Contains(logs.String(), "reason=outbox_full") {
		t.Fatalf("no log line for the drops:\n%s", logs.String())
	}

	back()
	second := NewEmitter(httpPublisher(t, s), fastOutbox(open(), nil), nil)
	s.waitFor(5)
	if err := second.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.checkDelivered(5)
}

// Without an outbox the old behaviour holds: dropped after the retries.
func TestEmitterWithoutOutboxDropsAfterRetries(t *testing.T) {
	s := newSink(t)
	s.outage("answers 503")
	reg := prometheus.NewRegistry()
	e := NewEmitter(httpPublisher(t, s), fastOutbox(nil, reg), nil)
	emit(e, 0, 3)
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if v := testenv.Counter(t, reg, "llm_proxy_events_dropped_total", "reason", DropPublishFailed); v != 3 {
		t.Fatalf("dropped{publish_failed} = %v", v)
	}
}

// An outbox that cannot be written (its Redis is down too) drops and counts.
func TestEmitterOutboxWriteFailure(t *testing.T) {
	reg := prometheus.NewRegistry()
	pub := PublisherFunc(func(context.Context, []event.Event) error { return errors.New("down") })
	e := NewEmitter(pub, fastOutbox(failingOutbox{}, reg), nil)
	emit(e, 0, 3)
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if v := testenv.Counter(t, reg, "llm_proxy_events_dropped_total", "reason", DropOutboxFailed); v != 3 {
		t.Fatalf("dropped{outbox_failed} = %v", v)
	}
}

type failingOutbox struct{}

func (failingOutbox) Append(context.Context, []event.Event) (int, error) {
	return 0, errors.New("outbox down")
}
func (failingOutbox) Peek(context.Context, int) ([]OutboxEntry, error) { return nil, nil }
func (failingOutbox) Remove(context.Context, []OutboxEntry) error      { return nil }
func (failingOutbox) Close() error                                     { return nil }

// While the outbox holds events and can no longer be written nor read (its
// Redis went away) but the sink is back, new events go to the sink rather
// than being dropped.
func TestEmitterOutboxUnwritableSendsDirectly(t *testing.T) {
	var sinkUp, outboxUp atomic.Bool
	outboxUp.Store(true)
	var mu sync.Mutex
	var got []string
	pub := PublisherFunc(func(_ context.Context, evs []event.Event) error {
		if !sinkUp.Load() {
			return errors.New("sink down")
		}
		mu.Lock()
		defer mu.Unlock()
		for i := range evs {
			got = append(got, evs[i].ID())
		}
		return nil
	})
	ob := &switchedOutbox{Outbox: NewMemoryOutbox(0, nil), up: &outboxUp}
	e := NewEmitter(pub, fastOutbox(ob, nil), nil)
	emit(e, 0, 3)
	waitUntil(t, "3 events in the outbox", func() bool { return e.Outboxed() == 3 })
	outboxUp.Store(false)
	sinkUp.Store(true)
	emit(e, 3, 6)
	waitUntil(t, "the new events at the sink", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 3 })
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if e.Dropped() != 0 || fmt.Sprint(got) != "[r03 r04 r05]" {
		t.Fatalf("dropped %d, sink got %v", e.Dropped(), got)
	}
}

// switchedOutbox fails every call while up is false.
type switchedOutbox struct {
	Outbox
	up *atomic.Bool
}

var errOutboxDown = errors.New("outbox down")

func (o *switchedOutbox) Append(ctx context.Context, evs []event.Event) (int, error) {
	if !o.up.Load() {
		return 0, errOutboxDown
	}
	return o.Outbox.Append(ctx, evs)
}

func (o *switchedOutbox) Peek(ctx context.Context, n int) ([]OutboxEntry, error) {
	if !o.up.Load() {
		return nil, errOutboxDown
	}
	return o.Outbox.Peek(ctx, n)
}

// countingOutbox counts the calls that reach the outbox.
type countingOutbox struct {
	Outbox
	appends, peeks atomic.Int64
}

func (o *countingOutbox) Append(ctx context.Context, evs []event.Event) (int, error) {
	o.appends.Add(1)
	return o.Outbox.Append(ctx, evs)
}

func (o *countingOutbox) Peek(ctx context.Context, n int) ([]OutboxEntry, error) {
	o.peeks.Add(1)
	return o.Outbox.Peek(ctx, n)
}

// While the sink takes everything, the outbox adds no work per batch: it is
// read once at the start (what an earlier process left) and then only every
// OutboxCheck, never written.
func TestEmitterOutboxIdleWhileSinkIsUp(t *testing.T) {
	s := newSink(t)
	ob := &countingOutbox{Outbox: NewMemoryOutbox(1<<20, nil)}
	opts := fastOutbox(ob, nil)
	opts.OutboxCheck = time.Hour
	e := NewEmitter(httpPublisher(t, s), opts, nil)
	emit(e, 0, 50)
	s.waitFor(50)
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.checkDelivered(50)
	if a, p := ob.appends.Load(), ob.peeks.Load(); a != 0 || p != 1 {
		t.Fatalf("outbox calls with the sink up: %d appends, %d peeks; want 0 and 1 (the start)", a, p)
	}
}
