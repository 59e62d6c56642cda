package failbudget_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/llm-proxy/llm-proxy/internal/testenv"
	"github.com/llm-proxy/llm-proxy/shared/failbudget"
)

func TestGuard(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	_ = down.Close() // every command fails at once
	for _, tc := range []struct {
		name string
		rdb  redis.UniversalClient
	}{{"memory", nil}, {"redis", rdb}, {"redis down: memory fallback", down}} {
		t.Run(tc.name, func(t *testing.T) {
			clk := testenv.NewClock(time.Unix(1_700_000_000, 0))
			m := failbudget.NewMetrics()
			g := failbudget.NewGuard(failbudget.Options{Surface: "test", PerClient: 2, Global: 3, Window: time.Minute,
				Redis: tc.rdb, KeyPrefix: prefix + tc.name + ":", Metrics: m, Clock: clk.Now})
			ctx := context.Background()
			want := []failbudget.Verdict{
				{Failures: 1}, {Failures: 2},
				{Failures: 3, Blocked: true, Scope: failbudget.ScopeClient, First: true},
				{Failures: 4, Blocked: true, Scope: failbudget.ScopeClient, First: true}, // the global budget (3)
			}
			for i, w := range want {
				v := g.Failed(ctx, "a")
				v.RetryAfter = 0
				if v != w {
					t.Fatalf("failure %d: %+v, want %+v", i+1, v, w)
				}
			}
			// Client b has its own budget, but the global one is spent.
			v := g.Failed(ctx, "b")
			if !v.Blocked || v.Scope != failbudget.ScopeGlobal || v.First || v.RetryAfter <= 0 || v.RetryAfter > time.Minute {
				t.Fatalf("global: %+v", v)
			}
			if got := testenv.Counter(t, registry(m), "llm_proxy_auth_budget_exhausted_total"); got != 2 {
				t.Fatalf("budgets spent: %v, want 2 (client and global)", got)
			}
			if tc.rdb == down && testenv.Counter(t, registry(m), "llm_proxy_auth_budget_fallbacks_total") == 0 {
				t.Fatal("fallbacks not counted")
			}
		})
	}
}

func registry(m *failbudget.Metrics) *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(m.Collectors()...)
	return r
}
