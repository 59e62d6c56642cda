package bootstrap

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/llm-proxy/llm-proxy/internal/testenv"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/ratelimit"
)

// TestLimiterLeasesAndGivesBackOnClose: with the default configuration and
// REDIS_ADDR the limiter keeps limits in Redis and leases a busy token's
// requests (RATE_LIMIT_LEASE defaults to 32), and Deps.Close gives back
// what a lease did not use: Redis then counts exactly the requests
// admitted.
func TestLimiterLeasesAndGivesBackOnClose(t *testing.T) {
	t.Parallel()
	client, prefix := testenv.Redis(t)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	cfg, err := config.Load(context.Background(), envconfig.MapLookuper(map[string]string{
		"ENCRYPTION_KEY":   base64.StdEncoding.EncodeToString(key),
		"DATABASE_PATH":    testenv.SQLitePath(t),
		"REDIS_ADDR":       testenv.RedisAddr(),
		"REDIS_KEY_PREFIX": prefix,
	}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d, err := Open(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			d.Close(ctx)
		}
	})
	lim, err := d.Limiter()
	if err != nil {
		t.Fatal(err)
	}
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
	if leased := testenv.Counter(t, d.Registry, "llm_proxy_ratelimit_leased_total"); leased == 0 {
		t.Fatalf("no admission of %d came from a lease with the default RATE_LIMIT_LEASE", admitted)
	}

	d.Close(ctx)
	closed = true

	// What Redis counts, read by a limiter of its own that does not lease.
	probe := ratelimit.NewRedis(client, prefix+"rl:", ratelimit.RedisOptions{})
	dec, err := probe.Admit(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if counted := dec.Requests.Limit - dec.Requests.Remaining - 1; counted != int64(admitted) {
		t.Fatalf("Redis counts %d requests after Close, %d were admitted", counted, admitted)
	}
}
