package events

import (
	"bytes"
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

// DeliverFunc delivers events in-process (an in-process subscriber, such as
// the dispatcher's DeliverBatch). It returns one error per event, nil for
// the ones delivered; a nil slice means all were. An error marked with
// Permanent is not retried.
type DeliverFunc func(ctx context.Context, evs []event.Event) []error

// Trigger subscribes a URL, or an in-process DeliverFunc, to the events
// that match its filter, like a Knative Trigger with an exact filter.
type Trigger struct {
	Name string
	// Filter maps attribute names ("type", "source", "subject", or an
	// extension such as "projectid") to the exact value an event must have.
	// An empty filter matches every event.
	Filter map[string]string
	// Subscriber is the URL that receives matching events, one per request
	// in binary mode unless Batch is set.
	Subscriber string
	// Batch says the subscriber takes the CloudEvents JSON batch format
	// (application/cloudevents-batch+json, as the dispatcher's Handler
	// does): the matching events of one Publish call then go in one request
	// (a lone event still in binary mode). Off, the default, suits any
	// CloudEvents receiver (sdk-go's handler does not take batches).
	Batch bool
	// Deliver, when set, is used instead of Subscriber: the matching events
	// of one Publish call are handed to it as they are, in one call (split
	// when their data exceeds MaxBatchBytes), without HTTP or encoding. The
	// events that fail are retried (only those, with the same backoff), and
	// counted and logged like failed HTTP deliveries. Deliver must not keep
	// or modify the events after it returns.
	Deliver DeliverFunc
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
	// MaxBatchBytes bounds the body of one batch request (4 MiB); the
	// matching events of a Publish call are split into requests of at most
	// this size (an event larger than that goes alone, in binary mode). For
	// in-process triggers it bounds the data bytes of one Deliver call.
	MaxBatchBytes int
	Registerer    prometheus.Registerer
}

// Broker is the in-process event broker of `llm-proxy serve`: it delivers
// events to every subscribed Trigger whose filter matches. A URL subscriber
// gets them over real HTTP — one event per request in binary mode or, for
// Batch triggers, the matching events of one Publish call in one request
// (application/cloudevents-batch+json) — with network errors and
// 404/408/409/429/5xx retried with exponential backoff. An in-process
// subscriber (Trigger.Deliver) gets the matching events of one Publish call
// in one function call, its failed events retried with the same backoff.
// It is a Publisher (for the Emitter) and an http.Handler (an ingress that
// answers 202 and delivers in the background, so K_SINK can point at it).
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
	if opts.MaxBatchBytes <= 0 {
		opts.MaxBatchBytes = 4 << 20
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Broker{opts: opts, log: log, ctx: ctx, cancel: cancel}
	b.delivered = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "llm_proxy_broker_deliveries_total", Help: "Events the in-process broker delivered to a subscriber.",
	})
	b.failed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "llm_proxy_broker_delivery_failures_total", Help: "Deliveries the in-process broker gave up (after retries or on a 4xx).",
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

// Publish delivers the events to every matching trigger, synchronously and
// with retries: per trigger, the matching events go in one batch request (in
// order; split by MaxBatchBytes) for Batch triggers, in one Deliver call for
// in-process triggers, one by one otherwise. A
// delivery that still fails is logged and counted
// (llm_proxy_broker_delivery_failures_total, per event), like an event a
// Knative broker sends to its dead-letter sink; Publish then returns a
// *BatchError whose entries belong to the events of the failed requests, so
// the caller knows. Dispatchers are idempotent, so a caller's retry is safe.
func (b *Broker) Publish(ctx context.Context, evs []event.Event) error {
	b.mu.RLock()
	triggers := b.triggers
	b.mu.RUnlock()
	var errs []error
	fail := func(idx []int, err error) {
		if errs == nil {
			errs = make([]error, len(evs))
		}
		for _, i := range idx {
			if errs[i] == nil {
				errs[i] = err
			}
		}
	}
	var idx []int
	for _, t := range triggers {
		idx = idx[:0]
		for i := range evs {
			if t.Matches(&evs[i]) {
				idx = append(idx, i)
			}
		}
		if len(idx) == 0 {
			continue
		}
		if t.Deliver != nil {
			b.deliverInProcess(ctx, t, evs, idx, fail)
			continue
		}
		if !t.Batch || len(idx) == 1 {
			for _, i := range idx {
				if err := b.deliver(ctx, t, evs[i]); err != nil {
					fail([]int{i}, err)
				}
			}
			continue
		}
		for _, chunk := range b.chunks(evs, idx) {
			if err := b.deliverChunk(ctx, t, evs, chunk); err != nil {
				fail(chunk.idx, err)
			}
		}
	}
	if errs == nil {
		return nil
	}
	return &BatchError{Errs: errs}
}

// chunk is one request's worth of events: their indexes in the Publish
// call and, for batches, their structured-mode JSON.
type chunk struct {
	idx  []int
	json [][]byte // nil: send idx[0] alone in binary mode
}

// chunks splits the events at idx into requests of at most MaxBatchBytes.
func (b *Broker) chunks(evs []event.Event, idx []int) []chunk {
	var out []chunk
	var cur chunk
	size := 1 // "[", then each event and its "," or "]"
	flush := func() {
		if len(cur.idx) == 1 {
			cur.json = nil // one event: binary mode
		}
		if len(cur.idx) > 0 {
			out = append(out, cur)
		}
		cur, size = chunk{}, 1
	}
	for _, i := range idx {
		var data []byte
		err := evs[i].Validate()
		if err == nil {
			// MarshalJSON directly: json.Marshal would re-validate and
			// compact its output, a sizeable share of the cost.
			data, err = evs[i].MarshalJSON()
		}
		if err != nil {
			// Invalid or not encodable: alone, where encoding fails
			// permanently with the reason.
			flush()
			out = append(out, chunk{idx: []int{i}})
			continue
		}
		if len(cur.idx) > 0 && size+1+len(data) > b.opts.MaxBatchBytes {
			flush()
		}
		cur.idx = append(cur.idx, i)
		cur.json = append(cur.json, data)
		size += 1 + len(data)
	}
	flush()
	return out
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
	err := b.retry(ctx, t, func(ctx context.Context) (int, error) { return b.post(ctx, t.Subscriber, ev) })
	if err == nil {
		b.delivered.Inc()
		return nil
	}
	b.failed.Inc()
	b.log.Error("event delivery failed", "trigger", t.Name, "type", ev.Type(), "source", ev.Source(), "id", ev.ID(), "error", err)
	return err
}

// deliverChunk sends one chunk: a batch request, or a lone event.
func (b *Broker) deliverChunk(ctx context.Context, t Trigger, evs []event.Event, c chunk) error {
	if c.json == nil {
		return b.deliver(ctx, t, evs[c.idx[0]])
	}
	body := make([]byte, 0, 2+len(c.json)*1024)
	body = append(body, '[')
	for j, data := range c.json {
		if j > 0 {
			body = append(body, ',')
		}
		body = append(body, data...)
	}
	body = append(body, ']')
	err := b.retry(ctx, t, func(ctx context.Context) (int, error) { return b.postBatch(ctx, t.Subscriber, body) })
	if err == nil {
		b.delivered.Add(float64(len(c.idx)))
		return nil
	}
	b.failed.Add(float64(len(c.idx)))
	first := &evs[c.idx[0]]
	b.log.Error("event batch delivery failed", "trigger", t.Name, "events", len(c.idx), "first_type", first.Type(), "first_source", first.Source(), "first_id", first.ID(), "error", err)
	return err
}

// retry runs post until it answers 2xx, retrying network errors and
// retryable statuses with backoff; a non-retryable status is Permanent.
func (b *Broker) retry(ctx context.Context, t Trigger, post func(context.Context) (int, error)) error {
	var last error
	for attempt := 0; attempt <= b.opts.Retries; attempt++ {
		if attempt > 0 {
			if err := Sleep(ctx, Backoff(b.opts.Backoff, b.opts.MaxBackoff, attempt)); err != nil {
				last = err
				break
			}
		}
		code, err := post(ctx)
		if err == nil && code/100 == 2 {
			return nil
		}
		if err != nil {
			last = err
			if IsPermanent(err) || ctx.Err() != nil {
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
	return last
}

func (b *Broker) post(ctx context.Context, url string, ev event.Event) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, b.opts.Timeout)
	defer cancel()
	req, err := cloudevents.NewHTTPRequestFromEvent(ctx, url, ev)
	if err != nil {
		return 0, Permanent(fmt.Errorf("encode event: %w", err))
	}
	return b.do(req, url)
}

func (b *Broker) postBatch(ctx context.Context, url string, body []byte) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, b.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, Permanent(fmt.Errorf("batch request: %w", err))
	}
	req.Header.Set("Content-Type", event.ApplicationCloudEventsBatchJSON)
	return b.do(req, url)
}

func (b *Broker) do(req *http.Request, url string) (int, error) {
	resp, err := b.opts.Client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("deliver to %s: %w", url, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode, nil
}
