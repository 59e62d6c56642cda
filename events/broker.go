package events

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/prometheus/client_golang/prometheus"
)

// Trigger subscribes a URL to the events that match its filter, like a
// Knative Trigger with an exact filter.
type Trigger struct {
	Name string
	// Filter maps attribute names ("type", "source", "subject", or an
	// extension such as "projectid") to the exact value an event must have.
	// An empty filter matches every event.
	Filter map[string]string
	// Subscriber is the URL that receives matching events (binary mode).
	Subscriber string
}

// Matches reports whether ev passes t's filter.
func (t Trigger) Matches(ev *event.Event) bool {
	for k, want := range t.Filter {
		var got string
		switch k {
		case "type":
			got = ev.Type()
		case "source":
			got = ev.Source()
		case "subject":
			got = ev.Subject()
		case "id":
			got = ev.ID()
		default:
			v, ok := ev.Extensions()[k]
			if !ok {
				return false
			}
			got = fmt.Sprint(v)
		}
		if got != want {
			return false
		}
	}
	return true
}

// BrokerOptions configures a Broker. Zero values take the defaults shown.
type BrokerOptions struct {
	Retries    int           // retries per delivery after the first attempt (3)
	Backoff    time.Duration // first retry delay (100ms), exponential with jitter
	MaxBackoff time.Duration // cap (5s)
	Timeout    time.Duration // per delivery attempt (30s)
	Client     *http.Client  // nil: a plain client
	Registerer prometheus.Registerer
}

// Broker is the in-process event broker of `llm-proxy serve`: it delivers
// each event over real HTTP (binary-mode CloudEvents) to every subscribed
// Trigger whose filter matches, retrying network errors and 404/408/409/429/
// 5xx with exponential backoff. It is a Publisher (for the Emitter) and an
// http.Handler (an ingress that answers 202 and delivers in the background,
// so K_SINK can point at it).
type Broker struct {
	opts BrokerOptions
	log  *slog.Logger

	mu       sync.RWMutex
	triggers []Trigger
	closing  bool
	wg       sync.WaitGroup
	ctx      context.Context
	cancel   context.CancelFunc

	delivered prometheus.Counter
	failed    prometheus.Counter
}

// NewBroker makes a broker without triggers. log may be nil.
func NewBroker(opts BrokerOptions, log *slog.Logger) *Broker {
	if opts.Retries < 0 {
		opts.Retries = 0
	} else if opts.Retries == 0 {
		opts.Retries = 3
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 100 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 5 * time.Second
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.Client == nil {
		opts.Client = &http.Client{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Broker{opts: opts, log: log, ctx: ctx, cancel: cancel}
	b.delivered = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "llmproxy_broker_deliveries_total", Help: "Events the in-process broker delivered to a subscriber.",
	})
	b.failed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "llmproxy_broker_delivery_failures_total", Help: "Deliveries the in-process broker gave up (after retries or on a 4xx).",
	})
	if r := opts.Registerer; r != nil {
		b.delivered = register(r, b.delivered)
		b.failed = register(r, b.failed)
	}
	return b
}

// Subscribe adds a trigger.
func (b *Broker) Subscribe(t Trigger) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.triggers = append(b.triggers, t)
}

func (b *Broker) matching(ev *event.Event) []Trigger {
	b.mu.RLock()
	defer b.mu.RUnlock()
	var out []Trigger
	for _, t := range b.triggers {
		if t.Matches(ev) {
			out = append(out, t)
		}
	}
	return out
}

// Publish delivers each event to every matching trigger, synchronously and
// with retries. A delivery that still fails is logged and counted
// (llmproxy_broker_delivery_failures_total), like an event a Knative broker
// sends to its dead-letter sink; Publish then returns a *BatchError so the
// caller knows. Dispatchers are idempotent, so a caller's retry is safe.
func (b *Broker) Publish(ctx context.Context, evs []event.Event) error {
	var errs []error
	for i := range evs {
		for _, t := range b.matching(&evs[i]) {
			if err := b.deliver(ctx, t, evs[i]); err != nil {
				if errs == nil {
					errs = make([]error, len(evs))
				}
				errs[i] = err
			}
		}
	}
	if errs == nil {
		return nil
	}
	return &BatchError{Errs: errs}
}

// ServeHTTP is the broker's ingress: it accepts one CloudEvent (binary or
// structured), answers 202 and delivers it in the background.
func (b *Broker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 8<<20)
	ev, err := cloudevents.NewEventFromHTTPRequest(r)
	if err != nil || ev.Validate() != nil {
		http.Error(w, "invalid CloudEvent", http.StatusBadRequest)
		return
	}
	b.mu.RLock()
	if b.closing {
		b.mu.RUnlock()
		http.Error(w, "broker closed", http.StatusServiceUnavailable)
		return
	}
	b.wg.Add(1)
	b.mu.RUnlock()
	go func(ev event.Event) {
		defer b.wg.Done()
		_ = b.Publish(b.ctx, []event.Event{ev})
	}(*ev)
	w.WriteHeader(http.StatusAccepted)
}

// Close waits for background deliveries; when ctx ends first they are
// abandoned.
func (b *Broker) Close(ctx context.Context) error {
	b.mu.Lock()
	b.closing = true // no new ingress work; running deliveries finish
	b.mu.Unlock()
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
		b.cancel()
		return nil
	case <-ctx.Done():
		b.cancel()
		<-done
		return ctx.Err()
	}
}

func (b *Broker) deliver(ctx context.Context, t Trigger, ev event.Event) error {
	var last error
	for attempt := 0; attempt <= b.opts.Retries; attempt++ {
		if attempt > 0 {
			if err := sleep(ctx, Backoff(b.opts.Backoff, b.opts.MaxBackoff, attempt)); err != nil {
				last = err
				break
			}
		}
		code, err := b.post(ctx, t.Subscriber, ev)
		if err == nil && code/100 == 2 {
			b.delivered.Inc()
			return nil
		}
		if err != nil {
			last = err
			if ctx.Err() != nil {
				break
			}
			continue
		}
		last = fmt.Errorf("subscriber %s answered %d", t.Name, code)
		if !RetryableStatus(code) {
			last = Permanent(last)
			break
		}
	}
	b.failed.Inc()
	b.log.Error("event delivery failed", "trigger", t.Name, "type", ev.Type(), "source", ev.Source(), "id", ev.ID(), "error", last)
	return last
}

func (b *Broker) post(ctx context.Context, url string, ev event.Event) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, b.opts.Timeout)
	defer cancel()
	req, err := cloudevents.NewHTTPRequestFromEvent(ctx, url, ev)
	if err != nil {
		return 0, Permanent(fmt.Errorf("encode event: %w", err))
	}
	resp, err := b.opts.Client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("deliver to %s: %w", url, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode, nil
}
