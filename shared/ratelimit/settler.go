package ratelimit

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// SettlerOptions configures a Settler. Zero values take the defaults.
type SettlerOptions struct {
	// Queue is how many settlements may wait (default 4096). When it is
	// full, Settle and Release settle inline: nothing is ever dropped.
	Queue int
	// Batch is the most settlements sent to Redis in one pipeline
	// (default 256).
	Batch int
	// Timeout bounds one pipeline or one inline settlement (default 2s).
	Timeout time.Duration
	// Gather is how long the worker lets settlements gather after the first
	// one before it sends them (default 2ms; negative: none). Without it,
	// every request wakes the worker for a pipeline of one; a reservation
	// held a little longer only makes the limiter more conservative.
	Gather time.Duration
	// Log receives settlement failures (nil: discarded).
	Log *slog.Logger
}

// Settler settles and releases reservations off the request path. A
// reservation that needs a round trip (Redis) is queued and sent by one
// background worker, which pipelines whatever is pending into one round
// trip; in-memory reservations and reservations of nothing are settled
// inline (they cost no I/O). Semantics are those of Reservation: exactly
// once per reservation. A reservation held a few milliseconds longer only
// makes the limiter more conservative, never lets it overspend.
//
// Close drains the queue; after Close, settlements run inline.
type Settler struct {
	opts SettlerOptions
	log  *slog.Logger
	ch   chan settlement
	done chan struct{}

	mu     sync.RWMutex // guards closed against sends on ch
	closed bool
}

type settlement struct {
	res     *redisReservation
	actual  int64
	release bool
}

// NewSettler starts a settler's worker; Close stops it.
func NewSettler(opts SettlerOptions) *Settler {
	if opts.Queue <= 0 {
		opts.Queue = 4096
	}
	if opts.Batch <= 0 {
		opts.Batch = 256
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.Gather == 0 {
		opts.Gather = 2 * time.Millisecond
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Settler{opts: opts, log: log, ch: make(chan settlement, opts.Queue), done: make(chan struct{})}
	go s.run()
	return s
}

// Settle replaces res with the actual usage, in the background when that
// takes a round trip. A nil res is nothing to settle.
func (s *Settler) Settle(res Reservation, actual int64) {
	s.submit(res, max(actual, 0), false)
}

// Release returns all of res, in the background when that takes a round
// trip.
func (s *Settler) Release(res Reservation) {
	s.submit(res, 0, true)
}

func (s *Settler) submit(res Reservation, actual int64, release bool) {
	switch r := res.(type) {
	case nil, noReservation:
		return
	case *memReservation: // no round trip: nothing to bound or queue
		if release {
			r.release()
		} else {
			r.settle(actual)
		}
		return
	case *leaseReservation:
		if rr, a := r.local(actual); rr != nil {
			s.submit(rr, a, release)
		}
		return
	case *redisReservation:
		if !r.needsTrip(actual) {
			r.finish()
			return
		}
		if r.queued.Swap(true) {
			return // already handed over: the first call wins
		}
		s.mu.RLock()
		if !s.closed {
			select {
			case s.ch <- settlement{res: r, actual: actual, release: release}:
				s.mu.RUnlock()
				return
			default: // full: settle inline rather than drop
			}
		}
		s.mu.RUnlock()
	}
	s.inline(res, actual, release)
}

// inline settles res on the caller's goroutine.
func (s *Settler) inline(res Reservation, actual int64, release bool) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
	defer cancel()
	op, err := "settle", error(nil)
	if release {
		op, err = "release", res.Release(ctx)
	} else {
		err = res.Settle(ctx, actual)
	}
	if err != nil {
		s.log.Warn("rate limit reservation not returned: it stays charged until it leaves its windows",
			"op", op, "error", err.Error())
	}
}

func (s *Settler) run() {
	defer close(s.done)
	batch := make([]settlement, 0, s.opts.Batch)
	for first := range s.ch {
		batch = append(batch[:0], first)
		if s.opts.Gather > 0 && len(s.ch) < s.opts.Batch-1 {
			time.Sleep(s.opts.Gather)
		}
	fill:
		for len(batch) < s.opts.Batch {
			select {
			case it, ok := <-s.ch:
				if !ok {
					break fill
				}
				batch = append(batch, it)
			default:
				break fill
			}
		}
		s.flush(batch)
		clear(batch) // drop references to settled reservations
	}
}

// flush sends one batch: one pipeline per Redis client. A script the
// server does not know yet (NOSCRIPT) is loaded by settling that one
// inline; any other failure leaves the reservation charged (and logged).
func (s *Settler) flush(batch []settlement) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
	defer cancel()
	for len(batch) > 0 {
		client := batch[0].res.l.client
		n := 0 // this client's settlements move to the front
		for i := range batch {
			if batch[i].res.l.client == client {
				batch[i], batch[n] = batch[n], batch[i]
				n++
			}
		}
		s.pipeline(ctx, client, batch[:n])
		batch = batch[n:]
	}
}

func (s *Settler) pipeline(ctx context.Context, client redis.UniversalClient, items []settlement) {
	pipe := client.Pipeline()
	cmds := make([]*redis.Cmd, len(items))
	for i, it := range items {
		r := it.res
		r.mu.Lock() // held until the reply: a concurrent call waits, then sees done
		if r.done {
			continue
		}
		keys, args, ok := r.script(it.actual)
		if !ok {
			r.done = true
			continue
		}
		cmds[i] = settleScript.EvalSha(ctx, pipe, keys, args...)
	}
	if pipe.Len() > 0 {
		_, _ = pipe.Exec(ctx) // errors are per command
	}
	var failed int
	var lastErr error
	for i, it := range items {
		r := it.res
		cmd := cmds[i]
		if cmd == nil {
			r.mu.Unlock()
			continue
		}
		err := cmd.Err()
		if err == nil || errors.Is(err, redis.Nil) {
			r.done = true
			r.mu.Unlock()
			continue
		}
		r.mu.Unlock()
		if isNoScript(err) {
			s.inline(r, it.actual, it.release) // Run loads the script
			continue
		}
		failed++
		lastErr = err
	}
	if failed > 0 {
		s.log.Warn("rate limit reservations not returned: they stay charged until they leave their windows",
			"count", failed, "error", lastErr.Error())
	}
}

func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

// Close stops accepting background work and waits until every queued
// settlement was sent, or ctx ends.
func (s *Settler) Close(ctx context.Context) error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.ch)
	}
	s.mu.Unlock()
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// needsTrip reports whether settling with actual usage takes a round trip.
func (r *redisReservation) needsTrip(actual int64) bool {
	return r.marked || actual != r.reserved || r.lifeBack > 0
}

// finish marks a reservation that needs no round trip as settled.
func (r *redisReservation) finish() {
	r.mu.Lock()
	r.done = true
	r.mu.Unlock()
}
