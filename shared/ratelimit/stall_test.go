package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/llm-proxy/llm-proxy/internal/testenv"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

// TestRedisStallChargesOnce: Redis stalls (the proxy holds every byte) for
// longer than REDIS_TIMEOUT while admissions are in flight; they fail, and
// what they sent reaches Redis when the stall ends. Whatever ran, the
// number admitted in all is exactly the limit: a failed admission charges
// nothing (it is cancelled), none charges twice (no client retries; a copy
// that runs again finds its admission marker).
func TestRedisStallChargesOnce(t *testing.T) {
	t.Parallel()
	const (
		limit     = 100
		before    = 20 // admitted before the stall
		inFlight  = 30 // admissions in flight during it
		timeout   = 150 * time.Millisecond
		afterMost = 3 * limit
	)
	for _, tc := range []struct {
		name   string
		lease  int64
		limits llmproxy.Limits
		max    int64
	}{
		{"lifetime quota", 0, llmproxy.Limits{}, limit},
		{"lifetime quota, leases", 32, llmproxy.Limits{}, limit},
		{"requests per minute", 0, llmproxy.Limits{RequestsPerMinute: limit}, 0},
		{"requests per minute and tokens, leases", 32, llmproxy.Limits{RequestsPerMinute: limit, TokensPerMinute: 1_000_000}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			proxy, c, prefix := faultyRedis(t, timeout)
			l := NewRedis(c, prefix, RedisOptions{Lease: tc.lease})
			t.Cleanup(func() { // before the client closes
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = l.Close(ctx)
			})
			tok, prj := ids()
			req := Request{TokenID: tok, ProjectID: prj, TokenLimits: tc.limits, MaxRequests: tc.max, ReserveTokens: 10}
			ctx := context.Background()
			admit := func() (allowed bool, err error) {
				d, err := l.Admit(ctx, req)
				if err != nil {
					return false, err
				}
				if d.Allowed {
					_ = d.Reservation.Settle(ctx, 10)
				}
				return d.Allowed, nil
			}

			// Connections ready in the pool, as on a busy process: every
			// admission in flight writes its script before the stall holds it.
			var warm sync.WaitGroup
			for range inFlight + 5 {
				warm.Go(func() { testenv.Must(t, c.Ping(ctx).Err()) })
			}
			warm.Wait()

			admitted := 0
			for range before {
				ok, err := admit()
				if err != nil || !ok {
					t.Fatalf("before the stall: %v, %v", ok, err)
				}
				admitted++
			}

			proxy.Pause()
			var (
				wg     sync.WaitGroup
				mu     sync.Mutex
				failed int
			)
			for range inFlight {
				wg.Go(func() {
					ok, err := admit()
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err != nil:
						failed++
					case ok:
						admitted++
					}
				})
			}
			proxy.WaitHeld(t, inFlight/2, 5*time.Second)
			wg.Wait() // every admission in flight gave up (REDIS_TIMEOUT)
			if failed == 0 {
				t.Fatal("no admission failed during the stall: the test did not stall Redis")
			}
			proxy.Resume() // what they sent reaches Redis now

			deadline := time.Now().Add(10 * time.Second)
			for l.pending.Load() > 0 {
				if time.Now().After(deadline) {
					t.Fatalf("%d cancellations still pending", l.pending.Load())
				}
				time.Sleep(5 * time.Millisecond)
			}

			refused := false
			for range afterMost {
				ok, err := admit()
				if err != nil {
					t.Fatalf("after the stall: %v", err)
				}
				if !ok {
					refused = true
					break
				}
				admitted++
			}
			if !refused {
				t.Fatalf("never refused after %d more admissions", afterMost)
			}
			if admitted != limit {
				t.Fatalf("admitted %d in all (%d failed during the stall), want exactly the limit %d", admitted, failed, limit)
			}
		})
	}
}

// TestHungRedisFailsWithinTimeout: Redis accepting connections and never
// answering fails an admission with ErrUnavailable (fail-closed: 503)
// within REDIS_TIMEOUT on a pooled connection and on a new one, never a
// hang; once Redis answers, admissions go through again without a restart.
func TestHungRedisFailsWithinTimeout(t *testing.T) {
	t.Parallel()
	const timeout = 200 * time.Millisecond
	proxy, c, prefix := faultyRedis(t, timeout)
	f := WithFallback(NewRedis(c, prefix, RedisOptions{}), nil, FailClosed, nil, nil)
	f.Cooldown = 0
	tok, prj := ids()
	req := Request{TokenID: tok, ProjectID: prj, TokenLimits: llmproxy.Limits{RequestsPerMinute: 100}}
	ctx := context.Background()
	if d, err := f.Admit(ctx, req); err != nil || !d.Allowed {
		t.Fatalf("redis up: %+v, %v", d, err)
	}
	proxy.Hang()
	for _, name := range []string{"pooled connection", "new connection"} {
		start := time.Now()
		_, err := f.Admit(ctx, req)
		took := time.Since(start)
		if !errors.Is(err, llmproxy.ErrUnavailable) {
			t.Fatalf("%s, redis hung: err = %v, want ErrUnavailable", name, err)
		}
		if took > timeout+400*time.Millisecond {
			t.Fatalf("%s, redis hung: failed after %v, want within REDIS_TIMEOUT (%v)", name, took, timeout)
		}
		t.Logf("%s: unavailable after %v", name, took)
	}
	proxy.Restore()
	deadline := time.Now().Add(5 * time.Second)
	for {
		d, err := f.Admit(ctx, req)
		if err == nil && d.Allowed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after Redis answers again: %+v, %v", d, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAdmissionRunsOnce drives the scripts the way a stall can order them:
// the same admission run twice charges once; a cancellation after it gives
// its charge back (a lease's k requests included), and one before it makes
// it charge nothing when it arrives; a second cancellation changes nothing.
func TestAdmissionRunsOnce(t *testing.T) {
	t.Parallel()
	c, prefix := testenv.Redis(t)
	// Mid-second: a lease is granted (no sub-bucket ends within leaseFloor).
	mid := time.UnixMilli(1_700_000_000_500)
	l := NewRedis(c, prefix+"rl:", RedisOptions{Now: func() time.Time { return mid }})
	tok, prj := ids()
	req := Request{TokenID: tok, ProjectID: prj, TokenLimits: llmproxy.Limits{RequestsPerMinute: 1000}, MaxRequests: 1000}
	cs := checks(req)
	ctx := context.Background()
	run := func(a admissionCall) []int64 {
		t.Helper()
		v, err := admitScript.Run(ctx, c, a.keys, a.args...).Int64Slice()
		testenv.Must(t, err)
		return v
	}
	cancel := func(a admissionCall) int64 {
		t.Helper()
		n, err := cancelScript.Run(ctx, c, a.keys, a.cancelArgs(req, cs)...).Int64()
		testenv.Must(t, err)
		return n
	}
	charged := func(a admissionCall) (life, window int64) {
		t.Helper()
		life, _ = c.Get(ctx, a.keys[len(cs)]).Int64()
		window, _ = c.HGet(ctx, a.keys[0], "t").Int64()
		return life, window
	}
	want := func(step string, a admissionCall, life, window int64) {
		t.Helper()
		if gl, gw := charged(a); gl != life || gw != window {
			t.Fatalf("%s: lifetime %d, window %d; want %d, %d", step, gl, gw, life, window)
		}
	}

	a := l.admission(req, cs, 1)
	first, again := run(a), run(a)
	if first[0] != 1 || fmt.Sprint(first) != fmt.Sprint(again) {
		t.Fatalf("run again = %v, want the first reply %v", again, first)
	}
	want("one admission run twice", a, 1, 1)

	b := l.admission(req, cs, 1)
	run(b)
	want("a second admission", b, 2, 2)
	if n := cancel(b); n != 1 {
		t.Fatalf("cancel after the run = %d, want 1 (given back)", n)
	}
	want("cancelled after it ran", b, 1, 1)
	if n := cancel(b); n != 0 {
		t.Fatalf("second cancel = %d, want 0", n)
	}
	if v := run(b); len(v) != 1 || v[0] != -1 {
		t.Fatalf("run after its cancellation = %v, want [-1]", v)
	}
	want("cancelled, then run again", b, 1, 1)

	early := l.admission(req, cs, 1)
	if n := cancel(early); n != 0 {
		t.Fatalf("cancel before the run = %d, want 0 (nothing charged yet)", n)
	}
	if v := run(early); len(v) != 1 || v[0] != -1 {
		t.Fatalf("run after an earlier cancellation = %v, want [-1]", v)
	}
	want("cancelled before it ran", early, 1, 1)

	lease := l.admission(req, cs, 4)
	if v := run(lease); v[3] != 4 {
		t.Fatalf("leased %d, want 4", v[3])
	}
	want("a lease of 4", lease, 5, 5)
	cancel(lease)
	want("the lease cancelled", lease, 1, 1)
}
