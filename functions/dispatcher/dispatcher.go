// Package dispatcher is the CloudEvent function that delivers llm-proxy's
// events to one backend per deployment: a JSONL file, Lunary, Helicone or a
// signed webhook.
//
// It is idempotent on (source, id): a redelivered event is acknowledged
// without a second delivery (dedup state in Redis, or bounded in memory; a
// key is marked done only after the backend accepted the event). Its status
// codes tell the platform what to do: 2xx done or duplicate, 429/5xx retry,
// 4xx poison (undecodable event or unknown type).
//
// The same Dispatcher serves three shapes: Receive for functions-framework-go
// (funcframework.RegisterCloudEventFunctionContext), Handler for mounting in
// a mux (an HTTP subscriber of a broker), and DeliverBatch for in-process
// callers: the Redis Streams consumer (llm-proxy dispatch) and the
// in-process broker of llm-proxy serve (an events.DeliverFunc).
package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/llm-proxy/llm-proxy/events"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/jsonscan"
)

// Errors that classify an event's outcome (errors.Is).
var (
	// ErrPoison: the event cannot be processed, ever (400; dead-letter). It
	// is also events.ErrPermanent, so an in-process broker does not retry it.
	ErrPoison error = poisonError{}
	// ErrInFlight: another delivery of the same event is under way (429).
	ErrInFlight = errors.New("event delivery in progress elsewhere")
)

type poisonError struct{}

func (poisonError) Error() string        { return "poison event" }
func (poisonError) Is(target error) bool { return target == events.ErrPermanent }

// Deps are the dispatcher's dependencies.
type Deps struct {
	Backend Backend // required
	// Dedup remembers delivered events; nil: a bounded in-memory Deduper
	// (NewMemoryDedup with DedupTTL), or none for an IdempotentBackend.
	Dedup    Deduper
	DedupTTL time.Duration // for the default Deduper (24h)
	// LeaseTTL bounds how long a claimed event stays "in progress" when its
	// deliverer dies (2m; for the default Deduper).
	LeaseTTL time.Duration
	// Owner names this dispatcher's leases so that a RedisDedup can take
	// them back as soon as it is known dead (an `llm-proxy dispatch`
	// consumer: NewOwner(consumer name)); zero: anonymous leases, which
	// only expire.
	Owner Owner
	// MaxBody bounds a request to Handler, one event or a batch
	// (DISPATCHER_MAX_EVENT_BYTES; default 16 MiB).
	MaxBody    int64
	Log        *slog.Logger
	Registerer prometheus.Registerer // nil: metrics not registered
}

// Dispatcher delivers events to its backend, once per (source, id).
type Dispatcher struct {
	backend Backend
	raw     bool // backend is a RawBackend
	dedup   Deduper
	owner   Owner
	log     *slog.Logger
	handler http.Handler

	delivered  prometheus.Counter
	duplicates prometheus.Counter
	failures   *prometheus.CounterVec
}

// New makes a dispatcher.
func New(deps Deps) (*Dispatcher, error) {
	if deps.Backend == nil {
		return nil, errors.New("dispatcher: no backend")
	}
	if deps.DedupTTL <= 0 {
		deps.DedupTTL = 24 * time.Hour
	}
	if deps.LeaseTTL <= 0 {
		deps.LeaseTTL = 2 * time.Minute
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	d := &Dispatcher{backend: deps.Backend, dedup: deps.Dedup, owner: deps.Owner, log: deps.Log.With("backend", deps.Backend.Name())}
	_, d.raw = deps.Backend.(RawBackend)
	d.delivered = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "llm_proxy_dispatcher_delivered_total", Help: "Events the dispatcher delivered to its backend.",
		ConstLabels: prometheus.Labels{"backend": deps.Backend.Name()},
	})
	d.duplicates = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "llm_proxy_dispatcher_duplicates_total", Help: "Redelivered events acknowledged without a second delivery.",
		ConstLabels: prometheus.Labels{"backend": deps.Backend.Name()},
	})
	d.failures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "llm_proxy_dispatcher_failures_total", Help: "Events the dispatcher could not deliver, by kind (poison, retry).",
		ConstLabels: prometheus.Labels{"backend": deps.Backend.Name()},
	}, []string{"kind"})
	if d.dedup == nil {
		if idem, ok := deps.Backend.(IdempotentBackend); ok {
			d.dedup = claimAll{}
			idem.CountDuplicates(d.duplicates)
		} else {
			d.dedup = NewMemoryDedup(0, deps.DedupTTL, deps.LeaseTTL)
		}
	}
	if r := deps.Registerer; r != nil {
		for _, c := range []prometheus.Collector{d.delivered, d.duplicates, d.failures} {
			if err := r.Register(c); err != nil {
				return nil, fmt.Errorf("register dispatcher metrics: %w", err)
			}
		}
	}
	p, err := cloudevents.NewHTTP()
	if err != nil {
		return nil, fmt.Errorf("cloudevents protocol: %w", err)
	}
	h, err := cloudevents.NewHTTPReceiveHandler(context.Background(), p, d.Receive)
	if err != nil {
		return nil, fmt.Errorf("cloudevents handler: %w", err)
	}
	maxBody := deps.MaxBody
	if maxBody <= 0 {
		maxBody = 16 << 20
	}
	d.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > maxBody { // refused unread; a longer chunked body fails its read
			http.Error(w, fmt.Sprintf("request body larger than %d bytes (DISPATCHER_MAX_EVENT_BYTES)", maxBody), http.StatusRequestEntityTooLarge)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		if r.Method == http.MethodPost && isBatch(r.Header) {
			d.serveBatch(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
	return d, nil
}

// FromConfig builds the dispatcher DISPATCHER_SERVICE names (cfg), with
// dedup in Redis under <keyPrefix>dispatch:<service>: when rdb is not nil.
// llm-proxy serve's FILE_EVENT_LOG makes a file dispatcher by setting
// DispatcherService and DispatcherEndpoint in cfg.
func FromConfig(cfg config.Events, rdb redis.UniversalClient, keyPrefix string, log *slog.Logger, reg prometheus.Registerer) (*Dispatcher, error) {
	b, err := NewBackend(BackendConfigFrom(cfg))
	if err != nil {
		return nil, err
	}
	deps := Deps{Backend: b, DedupTTL: cfg.DedupTTL, MaxBody: cfg.MaxEventBytes, Log: log, Registerer: reg}
	if rdb != nil {
		deps.Dedup = NewRedisDedup(rdb, keyPrefix+"dispatch:"+b.Name()+":", cfg.DedupTTL, 2*cfg.DispatcherTimeout)
	}
	return New(deps)
}

// Backend is the dispatcher's backend.
func (d *Dispatcher) Backend() Backend { return d.backend }

// Handler is an http.Handler receiving one CloudEvent per request (binary or
// structured mode, answered as Receive does) or a batch of them
// (application/cloudevents-batch+json, a JSON array of structured events),
// for mounting in a mux. A batch is answered 2xx only when every event in
// it was delivered, was a duplicate or is of a type the backend does not
// take; 503 (or 429 when the only failures are deliveries under way
// elsewhere) when any may succeed on a retry — redelivering the whole batch
// is safe, the delivered ones are duplicates then; 400 when the batch is
// undecodable or, with no retryable failure, holds a poison event. Either
// kind of request is answered 413 when it is larger than Deps.MaxBody.
func (d *Dispatcher) Handler() http.Handler { return d.handler }

// ServeHTTP makes the Dispatcher itself an http.Handler (same as Handler).
func (d *Dispatcher) ServeHTTP(w http.ResponseWriter, r *http.Request) { d.handler.ServeHTTP(w, r) }

// Receive is the CloudEvent function (functions-framework-go): nil (200) when
// delivered or a duplicate; 400 for a poison event; 429 when the same event
// is being delivered elsewhere; 503 when the backend or dedup store failed.
//
// Its signature is functions-framework-go's CloudEvent function type; the
// returned error is a *cehttp.Result carrying the status.
func (d *Dispatcher) Receive(ctx context.Context, ev event.Event) error {
	err := d.DeliverBatch(ctx, []event.Event{ev})[0]
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrPoison):
		return cehttp.NewResult(http.StatusBadRequest, "%s", err.Error())
	case errors.Is(err, ErrInFlight):
		return cehttp.NewResult(http.StatusTooManyRequests, "%s", err.Error())
	default:
		return cehttp.NewResult(http.StatusServiceUnavailable, "%s", "delivery failed, retry later")
	}
}

// DeliverBatch delivers evs and returns one error per event: nil when it was
// delivered, was a duplicate or is a type the backend does not take; an
// error wrapping ErrPoison (and so events.ErrPermanent) when it can never be
// delivered; any other error when a retry may succeed. It only reads evs:
// it is an events.DeliverFunc for an in-process broker trigger.
func (d *Dispatcher) DeliverBatch(ctx context.Context, evs []event.Event) []error {
	errs := make([]error, len(evs))
	recs := make([]Record, 0, len(evs))
	idx := make([]int, 0, len(evs))
	keys := make([]string, 0, len(evs))
	first := make(map[string]struct{}, len(evs))
	for i := range evs {
		rec, err := decode(&evs[i], d.raw)
		if err != nil {
			errs[i] = err
			d.failures.WithLabelValues("poison").Inc()
			d.log.Warn("poison event", "type", evs[i].Type(), "source", evs[i].Source(), "id", evs[i].ID(), "error", err)
			continue
		}
		if !d.backend.Accepts(evs[i].Type()) {
			continue
		}
		k := Key(&evs[i])
		if _, dup := first[k]; dup {
			d.duplicates.Inc()
			continue // the same event twice in one batch: deliver once
		}
		first[k] = struct{}{}
		rec.key = k
		recs, idx, keys = append(recs, rec), append(idx, i), append(keys, k)
	}
	if len(recs) == 0 {
		return errs
	}
	lease := d.owner.lease()
	states, err := d.dedup.Claim(ctx, keys, lease)
	if err != nil {
		d.log.Error("dedup store unavailable", "error", err)
		for _, i := range idx {
			errs[i] = fmt.Errorf("dedup: %w", err)
		}
		return errs
	}
	// The claimed ones, in place (recs, idx and keys are ours).
	claimed, claimedIdx, claimedKeys := recs[:0], idx[:0], keys[:0]
	for j, s := range states {
		switch s {
		case Done:
			d.duplicates.Inc()
		case InFlight:
			errs[idx[j]] = ErrInFlight
		case Claimed:
			claimed = append(claimed, recs[j])
			claimedIdx = append(claimedIdx, idx[j])
			claimedKeys = append(claimedKeys, keys[j])
		}
	}
	if len(claimed) == 0 {
		return errs
	}
	derr := d.backend.Deliver(ctx, claimed)
	var perr []error
	if derr != nil {
		perr = make([]error, len(claimed))
		var be *events.BatchError
		if errors.As(derr, &be) && len(be.Errs) == len(claimed) {
			copy(perr, be.Errs)
		} else {
			for j := range perr {
				perr[j] = derr
			}
		}
	}
	ok := claimedKeys // all of them, unless some failed
	var failed []string
	if perr != nil {
		ok = make([]string, 0, len(claimedKeys))
		for j, k := range claimedKeys {
			e := perr[j]
			if e == nil {
				ok = append(ok, k)
				continue
			}
			failed = append(failed, k)
			if events.IsPermanent(e) {
				errs[claimedIdx[j]] = fmt.Errorf("%w: backend rejected it: %w", ErrPoison, e)
				d.failures.WithLabelValues("poison").Inc()
			} else {
				errs[claimedIdx[j]] = e
				d.failures.WithLabelValues("retry").Inc()
			}
		}
	}
	if len(ok) > 0 {
		d.delivered.Add(float64(len(ok)))
		// Done after the backend accepted. Should recording fail, the event
		// is still acknowledged: a redelivery would be a duplicate.
		if err := d.dedup.Done(context.WithoutCancel(ctx), ok); err != nil {
			d.log.Error("record delivered events", "events", len(ok), "error", err)
		}
	}
	if len(failed) > 0 {
		d.log.Warn("backend delivery failed", "events", len(failed), "error", derr)
		if err := d.dedup.Release(context.WithoutCancel(ctx), failed, lease); err != nil {
			d.log.Error("release dedup leases", "error", err)
		}
	}
	return errs
}

// isBatch reports whether h announces a CloudEvents JSON batch.
func isBatch(h http.Header) bool {
	ct := h.Get("Content-Type")
	if ct == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == event.ApplicationCloudEventsBatchJSON
}

// serveBatch answers a batch request (see Handler).
func (d *Dispatcher) serveBatch(w http.ResponseWriter, r *http.Request) {
	evs, err := cehttp.NewEventsFromHTTPRequest(r)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			http.Error(w, "batch too large", http.StatusRequestEntityTooLarge)
			return
		}
		d.failures.WithLabelValues("poison").Inc()
		d.log.Warn("undecodable event batch", "error", err)
		http.Error(w, "invalid CloudEvents batch", http.StatusBadRequest)
		return
	}
	var poison, inFlight, retry int
	for _, err := range d.DeliverBatch(r.Context(), evs) {
		switch {
		case err == nil:
		case errors.Is(err, ErrPoison):
			poison++
		case errors.Is(err, ErrInFlight):
			inFlight++
		default:
			retry++
		}
	}
	switch {
	case retry > 0:
		http.Error(w, fmt.Sprintf("%d of %d events not delivered, retry later", retry+inFlight, len(evs)), http.StatusServiceUnavailable)
	case inFlight > 0:
		http.Error(w, fmt.Sprintf("%d of %d events being delivered elsewhere", inFlight, len(evs)), http.StatusTooManyRequests)
	case poison > 0:
		http.Error(w, fmt.Sprintf("%d of %d events are poison", poison, len(evs)), http.StatusBadRequest)
	default:
		w.WriteHeader(http.StatusOK)
	}
}

// decode validates ev and decodes the data of a request event, unless raw
// (the backend delivers events as they are, encoded with events.AppendEvent
// or EncodeEvent). For a raw backend, data held as JSON is checked by that
// encoding, which fails for the event alone when it is not valid JSON
// (poison: "backend rejected it"); decode only checks that a request
// event's data starts as an object.
func decode(ev *event.Event, raw bool) (Record, error) {
	if err := ev.Validate(); err != nil {
		return Record{}, fmt.Errorf("%w: %w", ErrPoison, err)
	}
	typ := ev.Type()
	if !events.KnownType(typ) {
		return Record{}, fmt.Errorf("%w: unknown type %q", ErrPoison, typ)
	}
	rec := Record{Event: *ev}
	switch data := ev.Data(); {
	case raw && events.DataIsJSON(ev):
		if typ == events.TypeRequestCompleted && !startsObject(data) {
			return Record{}, fmt.Errorf("%w: data is not a JSON object", ErrPoison)
		}
	case typ == events.TypeRequestCompleted:
		var d events.RequestCompleted
		if err := json.Unmarshal(data, &d); err != nil {
			return Record{}, fmt.Errorf("%w: data: %w", ErrPoison, err)
		}
		rec.Request = &d
	case len(data) > 0 && !jsonscan.Valid(data):
		return Record{}, fmt.Errorf("%w: data is not JSON", ErrPoison)
	}
	return rec, nil
}

// startsObject reports whether the JSON text b starts with an object.
func startsObject(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return c == '{'
	}
	return false
}
