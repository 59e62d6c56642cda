package ratelimit_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sethvargo/go-envconfig"

	"github.com/llm-proxy/llm-proxy/internal/testenv"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/ratelimit"
)

// TestOpenLeasesAndGivesBackOnClose: with the default configuration and a
// Redis client, Open keeps limits in Redis and leases a busy token's
// requests (RATE_LIMIT_LEASE defaults to 32), and its close gives back what
// a lease did not use: Redis then counts exactly the requests admitted.
func TestOpenLeasesAndGivesBackOnClose(t *testing.T) {
	t.Parallel()
	client, prefix := testenv.Redis(t)
	var cfg config.Limits
	if err := envconfig.ProcessWith(context.Background(), &envconfig.Config{Target: &cfg, Lookuper: envconfig.MapLookuper(nil)}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	lim, closeLim, err := ratelimit.Open(cfg, client, prefix, slog.New(slog.NewTextHandler(io.Discard, nil)), reg)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = closeLim(ctx)
		}
	})
	r := ratelimit.Request{TokenID: "tok-" + testenv.Suffix(), ProjectID: "prj-" + testenv.Suffix(),
		TokenLimits: llmproxy.Limits{RequestsPerMinute: 1_000_000}}

	// A busy token: a lease needs a whole busy second in this process.
	admitted := 0
	for start := time.Now(); time.Since(start) < 2500*time.Millisecond; time.Sleep(2 * time.Millisecond) {
		dec, err := lim.Admit(ctx, r)
		if err != nil || !dec.Allowed {
			t.Fatalf("admit: %+v %v", dec, err)
		}
		admitted++
		if dec.Reservation != nil {
			_ = dec.Reservation.Release(ctx)
		}
	}
	if leased := testenv.Counter(t, reg, "llm_proxy_ratelimit_leased_total"); leased == 0 {
		t.Fatalf("no admission of %d came from a lease with the default RATE_LIMIT_LEASE", admitted)
	}

	if err := closeLim(ctx); err != nil {
		t.Fatal(err)
	}
	closed = true

	// What Redis counts, read by a limiter of its own that does not lease.
	probe := ratelimit.NewRedis(client, prefix+"rl:", ratelimit.RedisOptions{})
	dec, err := probe.Admit(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if counted := dec.Requests.Limit - dec.Requests.Remaining - 1; counted != int64(admitted) {
		t.Fatalf("Redis counts %d requests after close, %d were admitted", counted, admitted)
	}
}

// TestOpenSelectsBackend: memory without Redis (auto), an error when redis
// is required but absent.
func TestOpenSelectsBackend(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	tests := []struct {
		backend string
		wantErr bool
	}{
		{"auto", false},
		{"memory", false},
		{"redis", true},
	}
	for _, tt := range tests {
		lim, _, err := ratelimit.Open(config.Limits{Backend: tt.backend, FailurePolicy: "fail-closed"}, nil, "", log, prometheus.NewRegistry())
		if (err != nil) != tt.wantErr {
			t.Errorf("%s without Redis: err %v, want error %v", tt.backend, err, tt.wantErr)
		}
		if err == nil {
			if _, isFallback := lim.(*ratelimit.Fallback); isFallback {
				t.Errorf("%s without Redis: a Redis limiter", tt.backend)
			}
		}
	}
}
