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
	// FlushSize triggers an early flush when this many tokens have pending
	// counters. Default 1000.
	FlushSize int
	// MaxPending bounds the tokens with pending counters, failed flushes
	// included. Beyond it, new tokens' usage is dropped (and counted) while
	// the sink keeps failing. Default 100,000.
	MaxPending int
	Logger     *slog.Logger
	// Now is the clock (tests). Default time.Now.
	Now func() time.Time
}

// UsageBatcher keeps per-token request counters and last-used times off the
// request path: Record aggregates in memory, and the counters are written to
// the store in batches (store.Store.AddUsage) every FlushInterval. A failed
// write keeps its counters for the next try.
type UsageBatcher struct {
	sink func(context.Context, []store.UsageDelta) error
	opts UsageOptions
	log  *slog.Logger

	mu      sync.Mutex
	pending map[string]*store.UsageDelta
	dropped int64

	flushMu sync.Mutex    // one flush at a time
	kick    chan struct{} // early flush request
}

// NewUsageBatcher returns a batcher writing through sink (e.g.
// store.Store.AddUsage). Run it with Run, stop it with Close.
func NewUsageBatcher(sink func(ctx context.Context, deltas []store.UsageDelta) error, opts UsageOptions) *UsageBatcher {
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
		pending: map[string]*store.UsageDelta{},
		kick:    make(chan struct{}, 1),
	}
}

// Record counts one request of the token (cacheHit: served from the response
// cache). It never blocks on I/O.
func (b *UsageBatcher) Record(tokenID string, cacheHit bool) {
	now := b.opts.Now()
	b.mu.Lock()
	d, ok := b.pending[tokenID]
	if !ok {
		if len(b.pending) >= b.opts.MaxPending {
			b.dropped++
			b.mu.Unlock()
			return
		}
		d = &store.UsageDelta{TokenID: tokenID}
		b.pending[tokenID] = d
	}
	d.Requests++
	if cacheHit {
		d.CacheHits++
	}
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

// Pending returns how many tokens have counters not yet written.
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
	b.pending = make(map[string]*store.UsageDelta, len(batch))
	b.mu.Unlock()

	if err := b.sink(ctx, batch); err != nil {
		b.mu.Lock()
		for _, d := range batch {
			p, ok := b.pending[d.TokenID]
			if !ok {
				if len(b.pending) >= b.opts.MaxPending {
					b.dropped += d.Requests
					continue
				}
				dd := d
				b.pending[d.TokenID] = &dd
				continue
			}
			p.Requests += d.Requests
			p.CacheHits += d.CacheHits
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
