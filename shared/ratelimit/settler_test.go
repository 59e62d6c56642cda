package ratelimit

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llm-proxy/llm-proxy/internal/testenv"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

// countingHook counts the commands a Redis client sends (pipelined ones
// one by one), the round trips (a pipeline is one), and the round trips
// that run a script (not those that set up a new connection).
type countingHook struct{ cmds, trips, scriptTrips atomic.Int64 }

func isScript(cmd redis.Cmder) bool { return cmd.Name() == "evalsha" || cmd.Name() == "eval" }

func (h *countingHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *countingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.cmds.Add(1)
		h.trips.Add(1)
		if isScript(cmd) {
			h.scriptTrips.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (h *countingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.cmds.Add(int64(len(cmds)))
		h.trips.Add(1)
		if slices.ContainsFunc(cmds, isScript) {
			h.scriptTrips.Add(1)
		}
		return next(ctx, cmds)
	}
}

func newCountedRedis(t *testing.T, now func() time.Time) (*Redis, *countingHook) {
	t.Helper()
	_, prefix := testenv.Redis(t)
	c := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr()})
	t.Cleanup(func() { _ = c.Close() })
	h := &countingHook{}
	c.AddHook(h)
	return NewRedis(c, prefix+"rl:", RedisOptions{Now: now}), h
}

func closeSettler(t *testing.T, s *Settler) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatalf("close settler: %v", err)
	}
}

// TestSettlerSettlesInBackground: reservations settled and released through
// a Settler leave exactly the budget synchronous calls would, in fewer
// round trips, once each whatever is called after.
func TestSettlerSettlesInBackground(t *testing.T) {
	t.Parallel()
	c := testenv.NewClock(epoch)
	l, hook := newCountedRedis(t, c.Now)
	tok, prj := ids()
	limits := llmproxy.Limits{TokensPerMinute: 1_000_000}
	req := Request{TokenID: tok, ProjectID: prj, TokenLimits: limits, ReserveTokens: 1000}

	const n = 200
	res := make([]Reservation, n)
	for i := range res {
		d := mustAdmit(t, l, req)
		if !d.Allowed {
			t.Fatalf("admission %d refused: %+v", i, d)
		}
		res[i] = d.Reservation
	}
	// 200 × 1000 reserved; settle half at 10 each, release the other half.
	before := hook.trips.Load()
	s := NewSettler(SettlerOptions{})
	var wg sync.WaitGroup
	for i, r := range res {
		wg.Go(func() {
			if i%2 == 0 {
				s.Settle(r, 10)
				s.Release(r) // too late: the settlement wins
			} else {
				s.Release(r)
				s.Settle(r, 5000)
			}
		})
	}
	wg.Wait()
	closeSettler(t, s)
	trips := hook.trips.Load() - before
	if trips >= n {
		t.Errorf("%d round trips for %d settlements, want them pipelined", trips, n)
	}
	t.Logf("%d settlements in %d round trips", n, trips)
	// A synchronous call after the settler's changes nothing either.
	if err := res[0].Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	d := mustAdmit(t, l, Request{TokenID: tok, ProjectID: prj, TokenLimits: limits, ReserveTokens: 1})
	if want := int64(1_000_000 - n/2*10 - 1); d.Tokens.Remaining != want {
		t.Fatalf("remaining = %d, want %d", d.Tokens.Remaining, want)
	}
}

// TestSettlerGathers: settlements that arrive one by one, a few
// milliseconds apart, while the worker gathers go to Redis in one pipeline;
// without gathering each would wake the worker for a round trip of its own.
func TestSettlerGathers(t *testing.T) {
	t.Parallel()
	c := testenv.NewClock(epoch)
	l, hook := newCountedRedis(t, c.Now)
	tok, prj := ids()
	req := Request{TokenID: tok, ProjectID: prj, TokenLimits: llmproxy.Limits{TokensPerMinute: 1_000_000}, ReserveTokens: 100}
	const n = 10
	res := make([]Reservation, n)
	for i := range res {
		res[i] = mustAdmit(t, l, req).Reservation
	}
	// The script loaded, as in a process that settled before (a server
	// that does not know it costs the first settlement a second trip).
	if err := settleScript.Load(context.Background(), l.client).Err(); err != nil {
		t.Fatal(err)
	}
	for _, gather := range []time.Duration{-1, 500 * time.Millisecond} {
		before := hook.scriptTrips.Load()
		s := NewSettler(SettlerOptions{Gather: gather})
		for _, r := range res {
			s.Settle(r, 40)
			time.Sleep(5 * time.Millisecond) // the worker runs in between
		}
		closeSettler(t, s)
		trips := hook.scriptTrips.Load() - before
		switch {
		case gather < 0 && trips < n/2:
			t.Fatalf("without gathering: %d round trips for %d settlements 5 ms apart; the test must see them go one by one", trips, n)
		case gather > 0 && trips != 1:
			t.Errorf("gathering %v: %d round trips for %d settlements 5 ms apart, want 1 pipeline", gather, trips, n)
		}
		res = res[:0]
		for range n {
			res = append(res, mustAdmit(t, l, req).Reservation)
		}
	}
}

// TestSettlerFullQueueSettlesInline: nothing is dropped when the queue is
// full, and after Close everything runs inline.
func TestSettlerFullQueueSettlesInline(t *testing.T) {
	t.Parallel()
	c := testenv.NewClock(epoch)
	l, _ := newCountedRedis(t, c.Now)
	tok, prj := ids()
	limits := llmproxy.Limits{TokensPerMinute: 10_000}
	req := Request{TokenID: tok, ProjectID: prj, TokenLimits: limits, ReserveTokens: 1000}
	remaining := func() int64 {
		t.Helper()
		d := mustAdmit(t, l, Request{TokenID: tok, ProjectID: prj, TokenLimits: limits})
		return d.Tokens.Remaining
	}

	// A settler whose worker has not started: its queue of one fills up.
	s := &Settler{opts: SettlerOptions{Queue: 1, Batch: 8, Timeout: 2 * time.Second},
		log: slog.New(slog.DiscardHandler), ch: make(chan settlement, 1), done: make(chan struct{})}
	a, b := mustAdmit(t, l, req), mustAdmit(t, l, req)
	s.Release(a.Reservation) // queued
	if got := remaining(); got != 8000 {
		t.Fatalf("remaining = %d, want 8000 while the release is queued", got)
	}
	s.Release(b.Reservation) // queue full: inline
	if got := remaining(); got != 9000 {
		t.Fatalf("remaining = %d, want 9000 after the inline release", got)
	}
	go s.run()
	closeSettler(t, s)
	if got := remaining(); got != 10_000 {
		t.Fatalf("remaining = %d, want 10000 after Close drained the queue", got)
	}
	// Closed: inline.
	d := mustAdmit(t, l, req)
	s.Settle(d.Reservation, 300)
	if got := remaining(); got != 9700 {
		t.Fatalf("remaining = %d, want 9700 after a settlement on a closed settler", got)
	}
}

// TestZeroReservationCostsNothing: a request that reserves no tokens (no
// model) has nothing to give back, so releasing it makes no round trip,
// and Admit writes no marker for it; settling actual usage still charges.
func TestZeroReservationCostsNothing(t *testing.T) {
	t.Parallel()
	c := testenv.NewClock(epoch)
	l, hook := newCountedRedis(t, c.Now)
	tok, prj := ids()
	limits := llmproxy.Limits{TokensPerMinute: 1000}
	req := Request{TokenID: tok, ProjectID: prj, TokenLimits: limits}
	s := NewSettler(SettlerOptions{})
	defer closeSettler(t, s)

	d := mustAdmit(t, l, req)
	before := hook.cmds.Load()
	s.Release(d.Reservation)
	if err := d.Reservation.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	d2 := mustAdmit(t, l, req)
	if err := d2.Reservation.Settle(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	if n := hook.cmds.Load() - before; n != 1 { // the second Admit only
		t.Fatalf("%d Redis commands, want 1 (the admission)", n)
	}
	keys, err := l.client.Keys(context.Background(), l.prefix+"*res:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 0 {
		t.Fatalf("reservation markers %v written for reservations of nothing", keys)
	}
	// Actual usage of an unreserved request is still charged, once.
	d3 := mustAdmit(t, l, req)
	if err := d3.Reservation.Settle(context.Background(), 40); err != nil {
		t.Fatal(err)
	}
	if err := d3.Reservation.Settle(context.Background(), 40); err != nil {
		t.Fatal(err)
	}
	if got := mustAdmit(t, l, req).Tokens.Remaining; got != 960 {
		t.Fatalf("remaining = %d, want 960", got)
	}
}

// TestSettlerMemoryInline: in-memory reservations need no round trip and
// are settled before Settle returns.
func TestSettlerMemoryInline(t *testing.T) {
	t.Parallel()
	c := testenv.NewClock(epoch)
	m := NewMemory(MemoryOptions{Now: c.Now})
	s := NewSettler(SettlerOptions{})
	defer closeSettler(t, s)
	tok, prj := ids()
	limits := llmproxy.Limits{TokensPerMinute: 1000}
	d := mustAdmit(t, m, Request{TokenID: tok, ProjectID: prj, TokenLimits: limits, ReserveTokens: 1000})
	s.Settle(d.Reservation, 250)
	s.Release(d.Reservation)
	s.Settle(nil, 1)
	if got := mustAdmit(t, m, Request{TokenID: tok, ProjectID: prj, TokenLimits: limits}).Tokens.Remaining; got != 750 {
		t.Fatalf("remaining = %d, want 750", got)
	}
}
