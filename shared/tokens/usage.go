package tokens

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/llm-proxy/llm-proxy/shared/store"
)

// Default usage batching settings.
const (
	DefaultUsageFlushInterval = time.Second
	DefaultUsageFlushSize     = 1000
	DefaultUsageMaxPending    = 100_000
)

// UsageOptions tune a UsageBatcher. Zero values take the defaults.
type UsageOptions struct {
	// FlushInterval is how often pending counters are written. Default 1s.
	FlushInterval time.Duration
	// FlushSize triggers an early flush when this many (token, hour) pairs
	// have pending counters. Default 1000.
	FlushSize int
	// MaxPending bounds the (token, hour) pairs with pending counters,
	// failed flushes included. Beyond it, new pairs' usage is dropped (and
	// counted) while the sink keeps failing. Default 100,000.
	MaxPending int
	Logger     *slog.Logger
	// Now is the clock (tests). Default time.Now.
	Now func() time.Time
}

// UsageBatcher keeps per-token request counters, last-used times and the
// project's model tokens off the request path: Record aggregates in memory
// per (token, UTC hour), and the counters are written to the store in
// batches (store.Store.AddUsage, which also fills the project's hourly
// usage) every FlushInterval. A failed write keeps its counters for the
// next try.
type UsageBatcher struct {
	sink func(context.Context, []store.UsageDelta) error
	opts UsageOptions
	log  *slog.Logger

	mu      sync.Mutex
	pending map[usageKey]*store.UsageDelta
	dropped int64

	flushMu sync.Mutex    // one flush at a time
	kick    chan struct{} // early flush request
}

// UsageSink writes batched counters (store.Store.AddUsage).
type UsageSink func(ctx context.Context, deltas []store.UsageDelta) error

// NewUsageBatcher returns a batcher writing through sink. Run it with Run,
// stop it with Close.
func NewUsageBatcher(sink UsageSink, opts UsageOptions) *UsageBatcher {
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = DefaultUsageFlushInterval
	}
	if opts.FlushSize <= 0 {
		opts.FlushSize = DefaultUsageFlushSize
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = DefaultUsageMaxPending
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &UsageBatcher{
		sink:    sink,
		opts:    opts,
		log:     log,
		pending: map[usageKey]*store.UsageDelta{},
		kick:    make(chan struct{}, 1),
	}
}

// usageKey identifies a pending delta: a token in one UTC hour (Unix hours),
// so that a delta never spans an hour of the project's hourly usage.
type usageKey struct {
	token string
	hour  int64
}

func keyOf(tokenID string, t time.Time) usageKey {
	return usageKey{token: tokenID, hour: hourOf(t)}
}

// hourOf returns t's hour since the Unix epoch (floor, also before 1970).
func hourOf(t time.Time) int64 {
	s := t.Unix()
	h := s / 3600
	if s%3600 < 0 {
		h--
	}
	return h
}

// Record counts one request of the token of project projectID (cacheHit:
// served from the response cache) and the model tokens it billed (0 for
// cache hits). An empty projectID counts for the token only. It never
// blocks on I/O and does not allocate once the (token, hour) is pending.
func (b *UsageBatcher) Record(tokenID, projectID string, cacheHit bool, promptTokens, completionTokens int64) {
	now := b.opts.Now()
	k := keyOf(tokenID, now)
	b.mu.Lock()
	d, ok := b.pending[k]
	if !ok {
		if len(b.pending) >= b.opts.MaxPending {
			b.dropped++
			b.mu.Unlock()
			return
		}
		d = &store.UsageDelta{TokenID: tokenID, ProjectID: projectID}
		b.pending[k] = d
	}
	d.Requests++
	if cacheHit {
		d.CacheHits++
	}
	d.PromptTokens += promptTokens
	d.CompletionTokens += completionTokens
	if now.After(d.LastUsedAt) {
		d.LastUsedAt = now
	}
	full := len(b.pending) >= b.opts.FlushSize
	b.mu.Unlock()
	if full {
		select {
		case b.kick <- struct{}{}:
		default:
		}
	}
}

// Dropped returns how many requests were not counted because MaxPending was
// reached.
func (b *UsageBatcher) Dropped() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dropped
}

// Pending returns how many (token, hour) pairs have counters not yet
// written.
func (b *UsageBatcher) Pending() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.pending)
}

// Run flushes every FlushInterval (or earlier when FlushSize is reached) until
// ctx ends. It does not flush on exit: call Close for that.
func (b *UsageBatcher) Run(ctx context.Context) {
	t := time.NewTicker(b.opts.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-b.kick:
		}
		if err := b.Flush(ctx); err != nil && ctx.Err() == nil {
			b.log.Warn("usage counters: flush failed, keeping them for the next try", "err", err, "pending_tokens", b.Pending())
		}
	}
}

// Flush writes the pending counters now. On failure they are merged back and
// retried by the next flush.
func (b *UsageBatcher) Flush(ctx context.Context) error {
	b.flushMu.Lock()
	defer b.flushMu.Unlock()

	b.mu.Lock()
	if len(b.pending) == 0 {
		b.mu.Unlock()
		return nil
	}
	batch := make([]store.UsageDelta, 0, len(b.pending))
	for _, d := range b.pending {
		batch = append(batch, *d)
	}
	b.pending = make(map[usageKey]*store.UsageDelta, len(batch))
	b.mu.Unlock()

	if err := b.sink(ctx, batch); err != nil {
		b.mu.Lock()
		for _, d := range batch {
			// LastUsedAt is the latest Record of the delta's hour.
			k := keyOf(d.TokenID, d.LastUsedAt)
			p, ok := b.pending[k]
			if !ok {
				if len(b.pending) >= b.opts.MaxPending {
					b.dropped += d.Requests
					continue
				}
				dd := d
				b.pending[k] = &dd
				continue
			}
			p.Requests += d.Requests
			p.CacheHits += d.CacheHits
			p.PromptTokens += d.PromptTokens
			p.CompletionTokens += d.CompletionTokens
			if d.LastUsedAt.After(p.LastUsedAt) {
				p.LastUsedAt = d.LastUsedAt
			}
		}
		b.mu.Unlock()
		return err
	}
	return nil
}

// Close writes what is pending, retrying until it succeeds or ctx ends (give
// it the shutdown deadline). Call it after the server stopped taking requests.
func (b *UsageBatcher) Close(ctx context.Context) error {
	backoff := 50 * time.Millisecond
	for {
		err := b.Flush(ctx)
		if err == nil {
			return nil
		}
		b.log.Warn("usage counters: final flush failed", "err", err, "pending_tokens", b.Pending())
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		backoff = min(backoff*2, time.Second)
	}
}
