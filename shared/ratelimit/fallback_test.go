package ratelimit

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/llm-proxy/llm-proxy/internal/testenv"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

func TestParsePolicy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want Policy
		ok   bool
	}{{"fail-closed", FailClosed, true}, {"fail-open", FailOpen, true}, {"open", "", false}, {"", "", false}} {
		got, err := ParsePolicy(tc.in)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("ParsePolicy(%q) = %q, %v", tc.in, got, err)
		}
	}
}

func TestFallbackDeadAddress(t *testing.T) {
	t.Parallel()
	for _, policy := range []Policy{FailClosed, FailOpen} {
		t.Run(string(policy), func(t *testing.T) {
			t.Parallel()
			c := redis.NewClient(&redis.Options{Addr: deadAddr(t), MaxRetries: -1, DialTimeout: 500 * time.Millisecond})
			t.Cleanup(func() { _ = c.Close() })
			var logs testenv.Buffer
			m := NewMetrics()
			f := WithFallback(NewRedis(c, "x:", RedisOptions{}), NewMemory(MemoryOptions{}), policy,
				slog.New(slog.NewTextHandler(&logs, nil)), m)
			req := Request{TokenID: "t", ProjectID: "p", TokenLimits: llmproxy.Limits{RequestsPerMinute: 3}}
			allowed := 0
			for range 5 {
				d, err := f.Admit(context.Background(), req)
				switch policy {
				case FailClosed:
					if !errors.Is(err, llmproxy.ErrUnavailable) {
						t.Fatalf("err = %v, want ErrUnavailable", err)
					}
				case FailOpen:
					if err != nil {
						t.Fatalf("err = %v, want the local limiter's decision", err)
					}
					if d.Allowed {
						allowed++
					}
				}
			}
			if policy == FailOpen && allowed != 3 {
				t.Fatalf("fail-open admitted %d, want 3 (local limiter enforces the limit)", allowed)
			}
			outcome := map[Policy]string{FailClosed: "rejected", FailOpen: "fallback"}[policy]
			if got := counterValue(t, m.BackendFailures.WithLabelValues(string(policy), outcome)); got != 5 {
				t.Fatalf("backend_failures_total{%s,%s} = %v, want 5", policy, outcome, got)
			}
			// Logged once (rate-limited), not five times.
			if n := bytes.Count([]byte(logs.String()), []byte(`msg="rate limiter unavailable"`)); n != 1 {
				t.Fatalf("logged %d times, want 1:\n%s", n, logs.String())
			}
		})
	}
}

func TestFallbackRedisGoesAwayMidTest(t *testing.T) {
	t.Parallel()
	for _, policy := range []Policy{FailClosed, FailOpen} {
		t.Run(string(policy), func(t *testing.T) {
			t.Parallel()
			p, c, prefix := faultyRedis(t, 500*time.Millisecond)
			m := NewMetrics()
			f := WithFallback(NewRedis(c, prefix, RedisOptions{}), NewMemory(MemoryOptions{}), policy, nil, m)
			f.Cooldown = 0
			tok, prj := ids()
			req := Request{TokenID: tok, ProjectID: prj, TokenLimits: llmproxy.Limits{RequestsPerMinute: 100}}
			ctx := context.Background()
			for range 3 {
				if d, err := f.Admit(ctx, req); err != nil || !d.Allowed {
					t.Fatalf("redis up: %+v, %v", d, err)
				}
			}
			p.Cut()
			d, err := f.Admit(ctx, req)
			switch policy {
			case FailClosed:
				if !errors.Is(err, llmproxy.ErrUnavailable) {
					t.Fatalf("redis stopped, fail-closed: err = %v, want ErrUnavailable", err)
				}
			case FailOpen:
				if err != nil || !d.Allowed {
					t.Fatalf("redis stopped, fail-open: %+v, %v, want admitted locally", d, err)
				}
				if d.Requests == nil || d.Requests.Remaining != 99 {
					t.Fatalf("local window = %+v, want the local limiter's fresh state (99 left)", d.Requests)
				}
			}
			if got := sumCounters(t, m.BackendFailures); got != 1 {
				t.Fatalf("backend failures = %v, want 1", got)
			}
			// Redis comes back: the shared state is used again.
			p.Restore()
			deadline := time.Now().Add(10 * time.Second)
			for {
				d, err = f.Admit(ctx, req)
				if err == nil && d.Allowed && d.Requests.Remaining == 96 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after restart: %+v %+v, %v, want Redis state (96 left)", d, d.Requests, err)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// TestFallbackUnlimitedDuringOutage: a token no limit applies to is admitted
// while Redis is cut, right after a limited request failed (the cooldown
// is on), under either policy, without waiting for Redis.
func TestFallbackUnlimitedDuringOutage(t *testing.T) {
	t.Parallel()
	for _, policy := range []Policy{FailClosed, FailOpen} {
		t.Run(string(policy), func(t *testing.T) {
			t.Parallel()
			p, c, prefix := faultyRedis(t, 500*time.Millisecond)
			f := WithFallback(NewRedis(c, prefix, RedisOptions{}), nil, policy, nil, nil)
			f.Cooldown = time.Hour
			tok, prj := ids()
			limitedReq := Request{TokenID: tok, ProjectID: prj, TokenLimits: llmproxy.Limits{RequestsPerMinute: 100}}
			ctx := context.Background()
			if d, err := f.Admit(ctx, limitedReq); err != nil || !d.Allowed {
				t.Fatalf("redis up: %+v, %v", d, err)
			}
			p.Cut()
			_, err := f.Admit(ctx, limitedReq)
			if policy == FailClosed && !errors.Is(err, llmproxy.ErrUnavailable) {
				t.Fatalf("limited request, redis cut: err = %v, want ErrUnavailable", err)
			}
			for _, r := range []Request{
				{TokenID: "free-" + tok, ProjectID: prj},                     // no limit at all
				{TokenID: "free-" + tok, ProjectID: prj, UsedRequests: 7},    // no quota either
				{TokenID: "free-" + tok, ProjectID: prj, ReserveTokens: 500}, // tokens reserved, nothing limits them
			} {
				start := time.Now()
				d, err := f.Admit(ctx, r)
				if err != nil || !d.Allowed {
					t.Fatalf("unlimited %+v during the outage: %+v, %v, want admitted", r, d, err)
				}
				if took := time.Since(start); took > 50*time.Millisecond {
					t.Fatalf("unlimited request took %v: it waited on Redis", took)
				}
				if err := d.Reservation.Release(ctx); err != nil {
					t.Fatalf("release: %v", err)
				}
			}
		})
	}
}

func TestFallbackCooldownSkipsPrimary(t *testing.T) {
	t.Parallel()
	calls := 0
	primary := limiterFunc(func(context.Context, Request) (Decision, error) {
		calls++
		return Decision{}, llmproxy.E(llmproxy.ErrUnavailable, llmproxy.CodeUnavailable, "down")
	})
	f := WithFallback(primary, nil, FailClosed, nil, nil)
	f.Cooldown = time.Hour
	for range 3 {
		if _, err := f.Admit(context.Background(), limitedRequest); !errors.Is(err, llmproxy.ErrUnavailable) {
			t.Fatalf("err = %v", err)
		}
	}
	if calls != 1 {
		t.Fatalf("primary called %d times during cooldown, want 1", calls)
	}
}

func TestFallbackPassesOtherErrors(t *testing.T) {
	t.Parallel()
	primary := limiterFunc(func(ctx context.Context, _ Request) (Decision, error) { return Decision{}, context.Canceled })
	m := NewMetrics()
	f := WithFallback(primary, nil, FailOpen, nil, m)
	if _, err := f.Admit(context.Background(), limitedRequest); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled unchanged", err)
	}
	if got := sumCounters(t, m.BackendFailures); got != 0 {
		t.Fatalf("a cancelled client counted as a backend failure")
	}
}

// limitedRequest is a request some limit applies to (the primary is asked).
var limitedRequest = Request{TokenID: "t", MaxRequests: 10}

type limiterFunc func(context.Context, Request) (Decision, error)

func (f limiterFunc) Admit(ctx context.Context, r Request) (Decision, error) { return f(ctx, r) }

// counterValue reads one counter.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// sumCounters adds every series of a counter vector.
func sumCounters(t *testing.T, v *prometheus.CounterVec) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 16)
	go func() { v.Collect(ch); close(ch) }()
	total := 0.0
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			t.Fatal(err)
		}
		total += d.GetCounter().GetValue()
	}
	return total
}
