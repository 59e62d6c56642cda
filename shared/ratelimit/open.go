package ratelimit

import (
	"context"
	"errors"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/llm-proxy/llm-proxy/shared/config"
)

// Open returns the limiter RATE_LIMIT_BACKEND selects, its metrics
// registered with reg: Redis under <keyPrefix>rl: (wrapped with
// RATE_LIMIT_FAILURE_POLICY and an in-memory fallback) when rdb is set or
// required, else in-memory. Close gives back the capacity that leases did
// not use; call it before closing rdb.
func Open(cfg config.Limits, rdb redis.UniversalClient, keyPrefix string, log *slog.Logger, reg prometheus.Registerer) (lim Limiter, close func(context.Context) error, err error) {
	metrics := NewMetrics()
	reg.MustRegister(metrics.Collectors()...)
	mem := NewMemory(MemoryOptions{})
	noClose := func(context.Context) error { return nil }
	switch {
	case !cfg.UseRedis(rdb != nil):
		return Instrumented(mem, metrics), noClose, nil
	case rdb == nil:
		return nil, nil, errors.New("RATE_LIMIT_BACKEND=redis needs REDIS_ADDR")
	}
	policy, err := ParsePolicy(cfg.FailurePolicy)
	if err != nil {
		return nil, nil, err
	}
	primary := NewRedis(rdb, keyPrefix+"rl:", RedisOptions{Lease: cfg.Lease, Log: log, Metrics: metrics})
	f := WithFallback(primary, mem, policy, log, metrics)
	f.Cooldown = cfg.FailureCooldown
	return f, primary.Close, nil
}
