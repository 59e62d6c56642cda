package events

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

// Errors of Emit.
var (
	ErrQueueFull = errors.New("event queue full")
	ErrClosed    = errors.New("emitter closed")
)

// Drop reasons (the reason label of llm_proxy_events_dropped_total).
const (
	DropQueueFull     = "queue_full"     // the bounded queue was full
	DropClosed        = "closed"         // emitted after Close
	DropInvalid       = "invalid"        // the event could not be built or is invalid
	DropRejected      = "rejected"       // the receiver rejected it permanently (4xx)
	DropPublishFailed = "publish_failed" // retries exhausted, no outbox
	DropShutdown      = "shutdown"       // Close's context ended before it was sent, no outbox
	DropOutboxFull    = "outbox_full"    // undeliverable, and the outbox is at its bound
	DropOutboxFailed  = "outbox_failed"  // undeliverable, and writing it to the outbox failed
)

var dropReasons = []string{DropQueueFull, DropClosed, DropInvalid, DropRejected, DropPublishFailed, DropShutdown, DropOutboxFull, DropOutboxFailed}

// EmitterOptions configures an Emitter. Zero values take the defaults shown.
type EmitterOptions struct {
	Source        string        // CloudEvents source (DefaultSource)
	Bodies        bool          // include request/response bodies in request events
	BufferSize    int           // queue bound (1000)
	BatchSize     int           // events per Publish (100)
	FlushInterval time.Duration // wait to fill a batch after its first event (0: send what is queued)
	Retries       int           // retries of a failed Publish (0: none; negative: none)
	RetryBackoff  time.Duration // first retry delay (200ms), doubled per retry with jitter
	MaxBackoff    time.Duration // cap of the retry delay (30s)
	LogEvery      time.Duration // at most one "dropping events" log line per interval (10s)
	// Outbox receives the events still undelivered after Retries (nil:
	// they are dropped, reason publish_failed). While it holds events, new
	// ones go behind them, and the emitter drains it oldest first: one
	// batch per attempt, the first attempt RetryBackoff after a failure,
	// doubling up to OutboxRetry. Close tries once more and leaves the rest
	// in it for the next process. The emitter closes it.
	Outbox      Outbox
	OutboxRetry time.Duration // cap of the wait between attempts to drain the outbox (5s)
	// OutboxCheck is how often an emitter whose outbox is empty looks for
	// events that other processes left in a shared one (30s).
	OutboxCheck time.Duration
	// Registerer receives the emitter's metrics (nil: not registered).
	// Registering twice in one registry reuses the existing collectors.
	Registerer prometheus.Registerer
}

// Emitter publishes events without blocking its callers: they enqueue into
// a bounded queue; one background worker builds the CloudEvents, batches
// them and publishes them with retries. Close drains the queue.
//
// Emitter implements the proxy's EventSink (RequestCompleted) and the
// management functions' event sink (Emit).
type Emitter struct {
	pub  Publisher
	opts EmitterOptions
	log  *slog.Logger

	mu     sync.RWMutex // held for reading while enqueueing; Close takes it to flip closed
	closed bool
	q      chan item
	full   chan struct{} // a batch is queued: run sends it before FlushInterval
	stop   chan struct{}
	done   chan struct{}
	ctx    context.Context // canceled when Close gives up
	cancel context.CancelFunc

	published  prometheus.Counter
	retries    prometheus.Counter
	outboxed   prometheus.Counter
	dropped    map[string]prometheus.Counter
	dropCount  atomic.Uint64
	pubCount   atomic.Uint64
	lastLog    atomic.Int64
	logPending atomic.Int64
	boxCount   atomic.Uint64

	// The worker's outbox state (run's goroutine only).
	boxed    bool        // the outbox (may) hold events: new ones go behind them
	boxFails int         // failed drain attempts in a row
	boxTimer *time.Timer // the next drain attempt, or check of an empty outbox
	closing  bool        // Close was called: no backoff, failures go to the outbox
}

type item struct {
	info llmproxy.RequestInfo
	ev   *event.Event
}

// NewEmitter starts an emitter publishing to pub. log may be nil.
func NewEmitter(pub Publisher, opts EmitterOptions, log *slog.Logger) *Emitter {
	if opts.Source == "" {
		opts.Source = DefaultSource
	}
	if opts.BufferSize <= 0 {
		opts.BufferSize = 1000
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 100
	}
	if opts.RetryBackoff <= 0 {
		opts.RetryBackoff = 200 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	if opts.LogEvery <= 0 {
		opts.LogEvery = 10 * time.Second
	}
	if opts.OutboxRetry <= 0 {
		opts.OutboxRetry = 5 * time.Second
	}
	if opts.OutboxCheck <= 0 {
		opts.OutboxCheck = 30 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Emitter{
		pub: pub, opts: opts, log: log,
		q:    make(chan item, opts.BufferSize),
		full: make(chan struct{}, 1),
		stop: make(chan struct{}),
		done: make(chan struct{}),
		ctx:  ctx, cancel: cancel,
	}
	e.registerMetrics()
	go e.run()
	return e
}

func (e *Emitter) registerMetrics() {
	published := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "llm_proxy_events_published_total", Help: "Events accepted by the event publisher.",
	})
	retries := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "llm_proxy_events_publish_retries_total", Help: "Retried event publish attempts.",
	})
	outboxed := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "llm_proxy_events_outboxed_total", Help: "Undelivered events written to the event outbox.",
	})
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "llm_proxy_events_dropped_total", Help: "Events dropped before delivery, by reason.",
	}, []string{"reason"})
	queue := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "llm_proxy_events_queue_length", Help: "Events waiting in the emitter queue.",
	}, func() float64 { return float64(len(e.q)) })
	if r := e.opts.Registerer; r != nil {
		published = register(r, published)
		retries = register(r, retries)
		outboxed = register(r, outboxed)
		dropped = register(r, dropped)
		_ = r.Register(queue) // a second emitter in one registry keeps the first gauge
	}
	e.published, e.retries, e.outboxed = published, retries, outboxed
	e.dropped = make(map[string]prometheus.Counter, len(dropReasons))
	for _, reason := range dropReasons {
		e.dropped[reason] = dropped.WithLabelValues(reason)
	}
}

func register[C prometheus.Collector](r prometheus.Registerer, c C) C {
	if err := r.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}

// RequestCompleted enqueues the request event of a finished request. It
// never blocks: it copies info (and, when bodies are on, one copy of the
// bodies) and returns; when the queue is full the event is dropped and
// counted.
func (e *Emitter) RequestCompleted(info *llmproxy.RequestInfo) {
	if info == nil {
		return
	}
	it := item{info: *info}
	if e.opts.Bodies && len(info.RequestBody)+len(info.ResponseBody) > 0 {
		buf := make([]byte, len(info.RequestBody)+len(info.ResponseBody))
		n := copy(buf, info.RequestBody)
		copy(buf[n:], info.ResponseBody)
		it.info.RequestBody, it.info.ResponseBody = buf[:n:n], buf[n:]
	} else {
		it.info.RequestBody, it.info.ResponseBody = nil, nil
	}
	_ = e.enqueue(&it)
}

// Emit enqueues a ready-made event (management changes). It never blocks:
// ErrQueueFull or ErrClosed when the event was dropped (and counted).
func (e *Emitter) Emit(_ context.Context, ev event.Event) error {
	if err := ev.Validate(); err != nil {
		e.drop(DropInvalid, 1)
		return err
	}
	return e.enqueue(&item{ev: &ev})
}

func (e *Emitter) enqueue(it *item) error {
	e.mu.RLock()
	if e.closed {
		e.mu.RUnlock()
		e.drop(DropClosed, 1)
		return ErrClosed
	}
	select {
	case e.q <- *it:
		e.mu.RUnlock()
		if len(e.q) >= e.opts.BatchSize-1 { // with the one run holds: a batch
			select {
			case e.full <- struct{}{}:
			default:
			}
		}
		return nil
	default:
		e.mu.RUnlock()
		e.drop(DropQueueFull, 1)
		return ErrQueueFull
	}
}

func (e *Emitter) drop(reason string, n int) {
	if n <= 0 {
		return
	}
	e.dropped[reason].Add(float64(n))
	e.dropCount.Add(uint64(n))
	pending := e.logPending.Add(int64(n))
	now := time.Now().UnixNano()
	last := e.lastLog.Load()
	if now-last >= int64(e.opts.LogEvery) && e.lastLog.CompareAndSwap(last, now) {
		e.log.Warn("events dropped", "reason", reason, "dropped_since_last_log", e.logPending.Swap(0),
			"pending_hint", pending, "metric", "llm_proxy_events_dropped_total")
	}
}

// Dropped is the number of events dropped so far (all reasons).
func (e *Emitter) Dropped() uint64 { return e.dropCount.Load() }

// Published is the number of events the publisher accepted so far (an
// event delivered again from the outbox counts again).
func (e *Emitter) Published() uint64 { return e.pubCount.Load() }

// Outboxed is the number of events written to the outbox so far.
func (e *Emitter) Outboxed() uint64 { return e.boxCount.Load() }

// Close stops accepting events and publishes what is queued. With an
// outbox, what fails goes to the outbox at once (no backoff), the outbox
// gets one more drain, and what is left stays in it for the next process.
// When ctx ends first, pending publishes are abandoned, the rest goes to the
// outbox (without one it is dropped and counted) and ctx's error is
// returned.
func (e *Emitter) Close(ctx context.Context) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		<-e.done
		return nil
	}
	e.closed = true
	e.mu.Unlock()
	close(e.stop)
	select {
	case <-e.done:
		e.cancel()
		return nil
	case <-ctx.Done():
		e.cancel()
		<-e.done
		return ctx.Err()
	}
}

// run sends the queue in batches. It wakes once for the first event of a
// batch and once when the batch is due (FlushInterval passed, or senders
// signal a full batch), not once per event: the events wait in the queue,
// and waking a parked goroutine per request costs more CPU than building
// its event.
func (e *Emitter) run() {
	defer close(e.done)
	if e.opts.Outbox != nil {
		// Before anything new: what an earlier process kept goes first.
		e.drainOutbox()
	}
	batch := make([]event.Event, 0, e.opts.BatchSize)
	var timer *time.Timer
	for {
		select {
		case it := <-e.q:
			batch = e.add(batch, &it)
		case <-e.boxC():
			e.drainOutbox()
			continue
		case <-e.stop:
			e.drainAndExit(batch)
			return
		}
		stopping := false
		if e.opts.FlushInterval > 0 {
			select { // a signal left from an earlier batch
			case <-e.full:
			default:
			}
			if len(batch)+len(e.q) < e.opts.BatchSize {
				if timer == nil {
					timer = time.NewTimer(e.opts.FlushInterval)
				} else {
					timer.Reset(e.opts.FlushInterval)
				}
				select {
				case <-timer.C:
				case <-e.full:
				case <-e.stop:
					stopping = true
				}
				timer.Stop()
			}
		}
		if stopping {
			e.drainAndExit(batch)
			return
		}
	fill:
		for len(batch) < e.opts.BatchSize {
			select {
			case it := <-e.q:
				batch = e.add(batch, &it)
			default:
				break fill
			}
		}
		e.send(batch)
		batch = batch[:0]
	}
}

func (e *Emitter) drainAndExit(batch []event.Event) {
	e.closing = true
	defer e.closeOutbox()
	for {
		select {
		case it := <-e.q:
			batch = e.add(batch, &it)
			if len(batch) >= e.opts.BatchSize {
				e.send(batch)
				batch = batch[:0]
			}
		default:
			e.send(batch)
			return
		}
	}
}

func (e *Emitter) add(batch []event.Event, it *item) []event.Event {
	if it.ev != nil {
		return append(batch, *it.ev)
	}
	var d RequestCompleted
	buildRequestCompleted(&d, &it.info, e.opts.Bodies)
	ev, valid, err := newRequestCompletedEvent(e.opts.Source, &d)
	if err == nil && !valid {
		err = ev.Validate()
	}
	if err != nil {
		e.log.Error("build request event", "request_id", it.info.RequestID, "error", err)
		e.drop(DropInvalid, 1)
		return batch
	}
	return append(batch, ev)
}

// send publishes batch, retrying the events that failed transiently; what
// still fails goes to the outbox. While the outbox holds events, batch goes
// behind them without an attempt.
func (e *Emitter) send(batch []event.Event) {
	if len(batch) == 0 {
		return
	}
	if e.boxed {
		unwritten := e.toOutbox(batch, false)
		if len(unwritten) == 0 {
			return
		}
		// The outbox cannot be written (its Redis is down): rather than
		// drop them, try the sink, out of order.
		batch = unwritten
	}
	pending := batch
	for attempt := 0; ; attempt++ {
		if e.ctx.Err() != nil {
			e.keep(pending, DropShutdown, e.ctx.Err(), attempt)
			return
		}
		_, retry, err := e.attempt(pending)
		if len(retry) == 0 {
			return
		}
		if attempt >= e.opts.Retries || (e.closing && e.opts.Outbox != nil) {
			e.keep(retry, DropPublishFailed, err, attempt+1)
			return
		}
		e.retries.Inc()
		if err := Sleep(e.ctx, Backoff(e.opts.RetryBackoff, e.opts.MaxBackoff, attempt+1)); err != nil {
			e.keep(retry, DropShutdown, err, attempt+1)
			return
		}
		pending = retry
	}
}

// attempt publishes evs once and counts the accepted and the rejected ones.
// It returns the index of the first event to retry (len(evs): none), the
// events to retry, in order, and the publisher's error.
func (e *Emitter) attempt(evs []event.Event) (first int, retry []event.Event, err error) {
	err = e.pub.Publish(e.ctx, evs)
	if err == nil {
		e.accepted(len(evs))
		return len(evs), nil, nil
	}
	first = len(evs)
	rejected := 0
	for i, perr := range errorsFor(err, len(evs)) {
		switch {
		case perr == nil:
			e.accepted(1)
		case IsPermanent(perr):
			rejected++
			e.log.Warn("event rejected", "type", evs[i].Type(), "id", evs[i].ID(), "error", perr)
		default:
			if retry == nil {
				first = i
			}
			retry = append(retry, evs[i])
		}
	}
	e.drop(DropRejected, rejected)
	return first, retry, err
}

// keep puts events that could not be delivered into the outbox, or, without
// one, drops them for reason.
func (e *Emitter) keep(evs []event.Event, reason string, err error, attempts int) {
	if e.opts.Outbox == nil {
		e.log.Error("publish events failed, dropping them", "events", len(evs), "attempts", attempts, "reason", reason, "error", err)
		e.drop(reason, len(evs))
		return
	}
	if !e.boxed {
		e.log.Warn("publish events failed, keeping them in the outbox until the sink is back", "events", len(evs), "attempts", attempts, "error", err)
		e.boxed, e.boxFails = true, 0
		e.retryOutbox()
	}
	e.toOutbox(evs, true)
}

func (e *Emitter) accepted(n int) {
	e.published.Add(float64(n))
	e.pubCount.Add(uint64(n))
}

// toOutbox appends evs to the outbox; what does not fit is dropped and
// counted, and so is what cannot be written when drop is set (else it is
// returned). The write is not cut short by Close's deadline: the outbox is
// where events go when everything else gave up.
func (e *Emitter) toOutbox(evs []event.Event, drop bool) (unwritten []event.Event) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(e.ctx), outboxWriteTimeout)
	defer cancel()
	stored, err := e.opts.Outbox.Append(ctx, evs)
	e.outboxed.Add(float64(stored))
	e.boxCount.Add(uint64(stored))
	rest := len(evs) - stored
	switch {
	case rest == 0:
	case err == nil:
		e.drop(DropOutboxFull, rest)
	case !drop:
		e.log.Error("event outbox write failed, sending the events directly", "events", rest, "error", err)
		return evs[stored:]
	default:
		e.log.Error("event outbox write failed, dropping events", "events", rest, "error", err)
		e.drop(DropOutboxFailed, rest)
	}
	return nil
}

// outboxWriteTimeout bounds one outbox write (a stalled Redis).
const outboxWriteTimeout = 5 * time.Second

// drainOutbox delivers the outbox's events oldest first, a batch per
// attempt, until it is empty (then the emitter publishes directly again and
// checks the outbox every OutboxCheck) or an attempt fails (then it tries
// again after a backoff). While it drains, a full batch of newly queued
// events goes behind the outbox's, so the queue does not overflow.
func (e *Emitter) drainOutbox() {
	for e.ctx.Err() == nil {
		entries, err := e.opts.Outbox.Peek(e.ctx, e.opts.BatchSize)
		switch {
		case errors.Is(err, ErrOutboxBusy): // another process drains it; ours go behind
			e.boxed = true
			e.retryOutbox()
			return
		case err != nil:
			e.log.Error("event outbox read failed", "error", err)
			e.retryOutbox()
			return
		case len(entries) == 0:
			if e.boxed {
				e.log.Info("event outbox drained")
			}
			e.boxed, e.boxFails = false, 0
			e.armOutbox(e.opts.OutboxCheck)
			return
		}
		e.boxed = true
		evs := make([]event.Event, len(entries))
		for i := range entries {
			evs[i] = entries[i].Event
		}
		first, _, _ := e.attempt(evs)
		if first > 0 {
			if err := e.opts.Outbox.Remove(e.ctx, entries[:first]); err != nil {
				e.log.Error("event outbox remove failed (its events will be delivered again)", "error", err)
				e.retryOutbox()
				return
			}
		}
		if first < len(evs) {
			e.retryOutbox()
			return
		}
		e.boxFails = 0
		e.spillQueue()
	}
}

// spillQueue moves queued events behind the outbox's while a batch of them
// waits.
func (e *Emitter) spillQueue() {
	for len(e.q) >= e.opts.BatchSize {
		batch := make([]event.Event, 0, e.opts.BatchSize)
		for len(batch) < e.opts.BatchSize {
			it := <-e.q // only run takes from q: len(e.q) events are there
			batch = e.add(batch, &it)
		}
		e.toOutbox(batch, true)
	}
}

// retryOutbox schedules the next drain attempt after a failure.
func (e *Emitter) retryOutbox() {
	e.boxFails++
	e.armOutbox(Backoff(e.opts.RetryBackoff, e.opts.OutboxRetry, e.boxFails))
}

func (e *Emitter) armOutbox(d time.Duration) {
	if e.closing {
		return
	}
	if e.boxTimer == nil {
		e.boxTimer = time.NewTimer(d)
		return
	}
	e.boxTimer.Reset(d)
}

// boxC is the channel of the next outbox attempt (nil: none).
func (e *Emitter) boxC() <-chan time.Time {
	if e.boxTimer == nil {
		return nil
	}
	return e.boxTimer.C
}

// closeOutbox, at the end of Close, drains the outbox once more and closes
// it; what is left stays for the next process.
func (e *Emitter) closeOutbox() {
	if e.opts.Outbox == nil {
		return
	}
	if e.boxed {
		e.drainOutbox()
	}
	if e.boxTimer != nil {
		e.boxTimer.Stop()
	}
	if e.boxed {
		e.log.Warn("events left in the outbox for the next start", "metric", "llm_proxy_events_outboxed_total")
	}
	if err := e.opts.Outbox.Close(); err != nil {
		e.log.Error("close event outbox", "error", err)
	}
}
