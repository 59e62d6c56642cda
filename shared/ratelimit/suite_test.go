package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llm-proxy/llm-proxy/internal/testenv"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

// backend builds n limiters that share state: for memory one limiter used n
// times (one process), for Redis n limiters with their own client each (n
// processes).
type backend struct {
	name string
	new  func(t *testing.T, n int, now func() time.Time) []Limiter
}

func backends() []backend {
	return []backend{
		{name: "memory", new: func(t *testing.T, n int, now func() time.Time) []Limiter {
			m := NewMemory(MemoryOptions{Now: now})
			out := make([]Limiter, n)
			for i := range out {
				out[i] = m
			}
			return out
		}},
		{name: "redis", new: func(t *testing.T, n int, now func() time.Time) []Limiter {
			return redisLimiters(t, n, RedisOptions{Now: now})
		}},
		{name: "redis-leased", new: func(t *testing.T, n int, now func() time.Time) []Limiter {
			return redisLimiters(t, n, RedisOptions{Now: now, Lease: 32})
		}},
	}
}

// redisLimiters builds n Redis limiters with a client each (n processes)
// sharing a fresh key prefix; their leases are given back at cleanup.
func redisLimiters(t *testing.T, n int, opts RedisOptions) []Limiter {
	_, prefix := testenv.Redis(t)
	out := make([]Limiter, n)
	for i := range out {
		c := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(), PoolSize: 64})
		l := NewRedis(c, prefix+"rl:", opts)
		t.Cleanup(func() {
			_ = l.Close(context.Background())
			_ = c.Close()
		})
		out[i] = l
	}
	return out
}

// forEach runs f as a parallel subtest for every backend.
func forEach(t *testing.T, f func(t *testing.T, b backend)) {
	t.Helper()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			f(t, b)
		})
	}
}

// epoch is a fixed start time in the middle of a minute bucket.
var epoch = time.Date(2026, 3, 1, 12, 0, 30, 500_000_000, time.UTC)

func ids() (token, project string) {
	s := testenv.Suffix()
	return "tok-" + s, "prj-" + s
}

// admitMany runs total concurrent admissions of mk(i) spread over ls and
// returns the decisions.
func admitMany(t *testing.T, ls []Limiter, total int, mk func(i int) Request) []Decision {
	t.Helper()
	out := make([]Decision, total)
	errs := make([]error, total)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range total {
		wg.Go(func() {
			<-start
			out[i], errs[i] = ls[i%len(ls)].Admit(context.Background(), mk(i))
		})
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("admit: %v", err)
		}
	}
	return out
}

func countAllowed(ds []Decision) int {
	n := 0
	for _, d := range ds {
		if d.Allowed {
			n++
		}
	}
	return n
}

func mustAdmit(t *testing.T, l Limiter, r Request) Decision {
	t.Helper()
	d, err := l.Admit(context.Background(), r)
	if err != nil {
		t.Fatalf("admit: %v", err)
	}
	return d
}

func TestConcurrentRequestsPerMinute(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, b backend) {
		for _, real := range []bool{false, true} {
			t.Run(fmt.Sprintf("real-clock=%v", real), func(t *testing.T) {
				now := testenv.NewClock(epoch).Now
				if real {
					now = nil // memory: time.Now; Redis: the server's TIME
				}
				concurrentRPM(t, b.new(t, 3, now))
			})
		}
	})
}

func concurrentRPM(t *testing.T, ls []Limiter) {
	{
		tok, prj := ids()
		ds := admitMany(t, ls, 300, func(int) Request {
			return Request{TokenID: tok, ProjectID: prj, TokenLimits: llmproxy.Limits{RequestsPerMinute: 100}}
		})
		if got := countAllowed(ds); got != 100 {
			t.Fatalf("admitted %d of 300, want exactly 100", got)
		}
		for _, d := range ds {
			if !d.Allowed {
				if d.Code != llmproxy.CodeRateLimitExceeded || d.RetryAfter <= 0 || d.RetryAfter > 61*time.Second {
					t.Fatalf("refusal = %+v, want rate_limit_exceeded with 0 < Retry-After <= 61s", d)
				}
				if d.Requests == nil || d.Requests.Remaining != 0 || d.Requests.Limit != 100 {
					t.Fatalf("refusal window = %+v, want limit 100 remaining 0", d.Requests)
				}
			}
		}
	}
}

func TestConcurrentProjectLimitOverTokens(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, b backend) {
		c := testenv.NewClock(epoch)
		ls := b.new(t, 3, c.Now)
		_, prj := ids()
		ds := admitMany(t, ls, 300, func(i int) Request {
			return Request{
				TokenID: fmt.Sprintf("%s-t%d", prj, i%5), ProjectID: prj,
				TokenLimits:   llmproxy.Limits{RequestsPerMinute: 1000},
				ProjectLimits: llmproxy.Limits{RequestsPerMinute: 100},
			}
		})
		if got := countAllowed(ds); got != 100 {
			t.Fatalf("admitted %d of 300 over 5 tokens, want exactly 100", got)
		}
	})
}

func TestConcurrentLifetimeQuota(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, b backend) {
		c := testenv.NewClock(epoch)
		ls := b.new(t, 2, c.Now)
		tok, prj := ids()
		ds := admitMany(t, ls, 200, func(int) Request {
			return Request{TokenID: tok, ProjectID: prj, MaxRequests: 50}
		})
		if got := countAllowed(ds); got != 50 {
			t.Fatalf("admitted %d of 200, want exactly 50", got)
		}
		for _, d := range ds {
			if !d.Allowed && d.Code != llmproxy.CodeQuotaExceeded {
				t.Fatalf("refusal code = %q, want %q", d.Code, llmproxy.CodeQuotaExceeded)
			}
		}
	})
}

func TestLifetimeSeed(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, b backend) {
		c := testenv.NewClock(epoch)
		l := b.new(t, 1, c.Now)[0]
		tok, prj := ids()
		// The persisted count (45) seeds the counter; a lagging persisted
		// count later (40) must not lower it.
		got := 0
		for i := range 10 {
			used := int64(45)
			if i > 0 {
				used = 40
			}
			if mustAdmit(t, l, Request{TokenID: tok, ProjectID: prj, MaxRequests: 50, UsedRequests: used}).Allowed {
				got++
			}
		}
		if got != 5 {
			t.Fatalf("admitted %d, want 5 (50 - 45 already used)", got)
		}
		// Raising the quota admits again.
		if !mustAdmit(t, l, Request{TokenID: tok, ProjectID: prj, MaxRequests: 51}).Allowed {
			t.Fatal("raised quota: refused, want admitted")
		}
	})
}

func TestAllOrNothing(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, b backend) {
		c := testenv.NewClock(epoch)
		l := b.new(t, 1, c.Now)[0]
		tok, prj := ids()
		req := func(reserve int64) Request {
			return Request{
				TokenID: tok, ProjectID: prj, MaxRequests: 3,
				TokenLimits:   llmproxy.Limits{RequestsPerMinute: 10, TokensPerMinute: 100},
				ProjectLimits: llmproxy.Limits{RequestsPerDay: 10},
				ReserveTokens: reserve,
			}
		}
		d := mustAdmit(t, l, req(60))
		if !d.Allowed {
			t.Fatalf("first: %+v, want admitted", d)
		}
		// Refused by tokens: must consume neither requests nor the quota.
		for range 5 {
			if d := mustAdmit(t, l, req(60)); d.Allowed || d.Code != llmproxy.CodeRateLimitExceeded {
				t.Fatalf("over token budget: %+v, want refused", d)
			}
		}
		d2 := mustAdmit(t, l, req(40))
		if !d2.Allowed {
			t.Fatalf("fits the budget: %+v, want admitted", d2)
		}
		if d2.Requests == nil || d2.Requests.Remaining != 8 {
			t.Fatalf("requests window = %+v, want remaining 8 (refusals consumed nothing)", d2.Requests)
		}
		if d2.Tokens == nil || d2.Tokens.Remaining != 0 || d2.Tokens.Limit != 100 {
			t.Fatalf("tokens window = %+v, want limit 100 remaining 0", d2.Tokens)
		}
		// The third admission is the last of max_requests=3 (the token
		// budget is not checked for requests reserving nothing).
		if d := mustAdmit(t, l, req(0)); !d.Allowed {
			t.Fatalf("third: %+v, want admitted", d)
		}
		if d := mustAdmit(t, l, req(0)); d.Allowed || d.Code != llmproxy.CodeQuotaExceeded {
			t.Fatalf("fourth: %+v, want quota_exceeded", d)
		}
	})
}

func TestSlidingWindowBoundary(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, b backend) {
		// 0.5 s before a minute boundary: a fixed window would reset in
		// 0.5 s and admit 10 more.
		c := testenv.NewClock(time.Date(2026, 3, 1, 12, 0, 59, 500_000_000, time.UTC))
		l := b.new(t, 1, c.Now)[0]
		tok, prj := ids()
		req := Request{TokenID: tok, ProjectID: prj, TokenLimits: llmproxy.Limits{RequestsPerMinute: 10}}
		for i := range 10 {
			if !mustAdmit(t, l, req).Allowed {
				t.Fatalf("request %d refused", i)
			}
		}
		c.Advance(time.Second) // past the minute boundary
		d := mustAdmit(t, l, req)
		if d.Allowed {
			t.Fatal("admitted right after the minute boundary: fixed-window behaviour")
		}
		if d.RetryAfter < 58*time.Second || d.RetryAfter > 60*time.Second {
			t.Fatalf("Retry-After = %v, want about 59 s", d.RetryAfter)
		}
		c.Advance(d.RetryAfter - time.Millisecond)
		if mustAdmit(t, l, req).Allowed {
			t.Fatal("admitted before Retry-After")
		}
		c.Advance(time.Millisecond)
		admitted := 0
		for range 12 {
			if mustAdmit(t, l, req).Allowed {
				admitted++
			}
		}
		if admitted != 10 {
			t.Fatalf("after Retry-After admitted %d, want 10", admitted)
		}
	})
}

func TestSlidingWindowSpread(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, b backend) {
		// One request every 2 s over 10 minutes with a limit of 20/min:
		// every rolling minute holds at most 20, and the steady rate of
		// 30/min is cut to 20 admissions per minute on average.
		c := testenv.NewClock(epoch)
		l := b.new(t, 1, c.Now)[0]
		tok, prj := ids()
		req := Request{TokenID: tok, ProjectID: prj, TokenLimits: llmproxy.Limits{RequestsPerMinute: 20}}
		var admitted []time.Time
		for range 300 {
			if mustAdmit(t, l, req).Allowed {
				admitted = append(admitted, c.Now())
			}
			c.Advance(2 * time.Second)
		}
		for i := range admitted {
			n := 0
			for j := i; j < len(admitted) && admitted[j].Sub(admitted[i]) < time.Minute; j++ {
				n++
			}
			if n > 20 {
				t.Fatalf("%d admissions within one minute from %v, limit 20", n, admitted[i])
			}
		}
		if len(admitted) < 180 || len(admitted) > 200 {
			t.Fatalf("admitted %d over 10 minutes, want 180..200", len(admitted))
		}
	})
}

func TestReservationsNoOverspend(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, b backend) {
		c := testenv.NewClock(epoch)
		ls := b.new(t, 3, c.Now)
		tok, prj := ids()
		const limit = 20_000
		var spent, admitted atomic.Int64
		var wg sync.WaitGroup
		for w := range 30 {
			wg.Go(func() {
				l := ls[w%len(ls)]
				rng := rand.New(rand.NewPCG(uint64(w), 7))
				for refusals := 0; refusals < 5; {
					reserve := 200 + rng.Int64N(800)
					d, err := l.Admit(context.Background(), Request{
						TokenID: fmt.Sprintf("%s-%d", tok, w%5), ProjectID: prj,
						TokenLimits:   llmproxy.Limits{TokensPerMinute: limit},
						ProjectLimits: llmproxy.Limits{TokensPerMinute: limit, RequestsPerMinute: 10_000},
						ReserveTokens: reserve,
					})
					if err != nil {
						t.Errorf("admit: %v", err)
						return
					}
					if !d.Allowed {
						refusals++
						continue
					}
					admitted.Add(1)
					actual := rng.Int64N(reserve + 1)
					spent.Add(actual)
					if err := d.Reservation.Settle(context.Background(), actual); err != nil {
						t.Errorf("settle: %v", err)
					}
				}
			})
		}
		wg.Wait()
		if s := spent.Load(); s > limit {
			t.Fatalf("spent %d tokens, limit %d: overspend", s, limit)
		} else if s < limit/2 {
			t.Fatalf("spent only %d of %d: settlement does not return unused reservations", s, limit)
		}
		t.Logf("%d admitted, %d of %d tokens spent", admitted.Load(), spent.Load(), limit)
	})
}

func TestReleaseReturnsBudget(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, b backend) {
		c := testenv.NewClock(epoch)
		ls := b.new(t, 2, c.Now)
		tok, prj := ids()
		req := Request{TokenID: tok, ProjectID: prj,
			TokenLimits: llmproxy.Limits{TokensPerMinute: 1000, TokensPerDay: 5000}, ReserveTokens: 1000}
		d := mustAdmit(t, ls[0], req)
		if !d.Allowed {
			t.Fatalf("first: %+v", d)
		}
		if d2 := mustAdmit(t, ls[1], req); d2.Allowed {
			t.Fatal("second admitted while the first holds the whole budget")
		}
		ctx := context.Background()
		if err := d.Reservation.Release(ctx); err != nil {
			t.Fatal(err)
		}
		// Idempotent: a second Release or a later Settle changes nothing.
		if err := d.Reservation.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if err := d.Reservation.Settle(ctx, 1000); err != nil {
			t.Fatal(err)
		}
		d3 := mustAdmit(t, ls[1], req)
		if !d3.Allowed {
			t.Fatalf("after release: %+v, want admitted", d3)
		}
		if d3.Tokens.Remaining != 0 {
			t.Fatalf("remaining = %d, want 0", d3.Tokens.Remaining)
		}
		// Settling above the reservation charges the excess.
		if err := d3.Reservation.Settle(ctx, 1500); err != nil {
			t.Fatal(err)
		}
		c.Advance(61 * time.Second)
		d4 := mustAdmit(t, ls[0], Request{TokenID: tok, ProjectID: prj,
			TokenLimits: llmproxy.Limits{TokensPerMinute: 1000, TokensPerDay: 5000}, ReserveTokens: 100})
		if !d4.Allowed || d4.Tokens.Remaining != 900 {
			t.Fatalf("next minute: %+v %+v, want admitted with 900 left", d4, d4.Tokens)
		}
		// The day window saw 1500 + 100.
		_ = d4.Reservation.Release(ctx)
		d5 := mustAdmit(t, ls[0], Request{TokenID: tok, ProjectID: prj,
			TokenLimits: llmproxy.Limits{TokensPerDay: 5000}, ReserveTokens: 3500})
		if !d5.Allowed || d5.Tokens.Remaining != 0 {
			t.Fatalf("day window: %+v %+v, want admitted with 0 left", d5, d5.Tokens)
		}
		if d6 := mustAdmit(t, ls[0], Request{TokenID: tok, ProjectID: prj,
			TokenLimits: llmproxy.Limits{TokensPerDay: 5000}, ReserveTokens: 1}); d6.Allowed {
			t.Fatal("day budget exhausted but admitted")
		}
	})
}

func TestConcurrentReleaseOnDisconnect(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, b backend) {
		// 100 concurrent "streams" reserve 100 each of 5000: 50 fit. Every
		// admitted stream's client disconnects (Release, twice, racing with
		// a Settle): afterwards the whole budget is free again.
		c := testenv.NewClock(epoch)
		ls := b.new(t, 3, c.Now)
		tok, prj := ids()
		req := Request{TokenID: tok, ProjectID: prj, TokenLimits: llmproxy.Limits{TokensPerMinute: 5000}, ReserveTokens: 100}
		ds := admitMany(t, ls, 100, func(int) Request { return req })
		if got := countAllowed(ds); got != 50 {
			t.Fatalf("admitted %d, want 50", got)
		}
		var wg sync.WaitGroup
		for _, d := range ds {
			if !d.Allowed {
				continue
			}
			for range 2 {
				wg.Go(func() { _ = d.Reservation.Release(context.Background()) })
			}
			wg.Go(func() { _ = d.Reservation.Settle(context.Background(), 0) })
		}
		wg.Wait()
		full := req
		full.ReserveTokens = 5000
		if d := mustAdmit(t, ls[0], full); !d.Allowed {
			t.Fatalf("after releases: %+v, want the whole budget free", d)
		}
	})
}

func TestTooLargeReservation(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, b backend) {
		c := testenv.NewClock(epoch)
		l := b.new(t, 1, c.Now)[0]
		tok, prj := ids()
		d := mustAdmit(t, l, Request{TokenID: tok, ProjectID: prj, TokenLimits: llmproxy.Limits{TokensPerMinute: 100}, ReserveTokens: 101})
		if d.Allowed || d.Reason == "" || d.RetryAfter <= 0 {
			t.Fatalf("decision = %+v, want refused with a reason", d)
		}
	})
}

func TestNoLimits(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, b backend) {
		c := testenv.NewClock(epoch)
		l := b.new(t, 1, c.Now)[0]
		tok, prj := ids()
		d := mustAdmit(t, l, Request{TokenID: tok, ProjectID: prj, ReserveTokens: 10})
		if !d.Allowed || d.Requests != nil || d.Tokens != nil || d.Reservation == nil {
			t.Fatalf("decision = %+v, want admitted without windows and with a reservation", d)
		}
		if err := d.Reservation.Settle(context.Background(), 5); err != nil {
			t.Fatal(err)
		}
	})
}

func TestUnlimitedNeedsNoBackend(t *testing.T) {
	t.Parallel()
	c := redis.NewClient(&redis.Options{Addr: deadAddr(t), MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	d, err := NewRedis(c, "x:", RedisOptions{}).Admit(context.Background(), Request{TokenID: "t", ProjectID: "p", ReserveTokens: 100})
	if err != nil || !d.Allowed || d.Reservation == nil {
		t.Fatalf("no limits: %+v, %v, want admitted without asking Redis", d, err)
	}
}

func TestRedisUnavailable(t *testing.T) {
	t.Parallel()
	addr := deadAddr(t)
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { _ = c.Close() })
	l := NewRedis(c, "x:", RedisOptions{})
	_, err := l.Admit(context.Background(), Request{TokenID: "t", MaxRequests: 1})
	if !errors.Is(err, llmproxy.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Admit(ctx, Request{TokenID: "t", MaxRequests: 1}); errors.Is(err, llmproxy.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: err = %v, want context.Canceled and not ErrUnavailable", err)
	}
}
