package tokens

import (
	"context"
	"errors"
	"log/slog"

	"github.com/redis/go-redis/v9"

	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/secrets"
)

// Invalidation is a process's token-invalidation bus: what the management
// service publishes revocations to, and what the process's validators
// subscribe to.
type Invalidation struct {
	Invalidator
	Subscribe func(v *Validator)
}

// NewInvalidation returns the Redis pub/sub bus on channel when rdb is not
// nil (every instance drops revoked tokens within a second), else an
// in-process bus. The Redis subscriber runs until ctx ends.
func NewInvalidation(ctx context.Context, rdb *redis.Client, channel string, log *slog.Logger) Invalidation {
	if rdb == nil {
		bus := NewLocalBus()
		return Invalidation{Invalidator: bus, Subscribe: bus.Subscribe}
	}
	bus := NewRedisBus(rdb, channel, log)
	go func() {
		if err := bus.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("token invalidation subscriber stopped", "error", err)
		}
	}()
	return Invalidation{Invalidator: bus, Subscribe: bus.Subscribe}
}

// NewValidatorFromConfig returns a validator with the TOKEN_CACHE_* settings,
// subscribed to inv.
func NewValidatorFromConfig(lookup Lookup, keyring *secrets.Keyring, cfg config.Tokens, inv Invalidation) *Validator {
	v := NewValidator(lookup, keyring, ValidatorOptions{
		PositiveTTL: cfg.CacheTTL, NegativeTTL: cfg.NegativeCacheTTL, MaxEntries: cfg.CacheMaxEntries,
	})
	inv.Subscribe(v)
	return v
}

// StartUsageBatcher returns the background writer of request counters with
// the USAGE_* settings, running until ctx ends; Close flushes it.
func StartUsageBatcher(ctx context.Context, sink UsageSink, cfg config.Tokens, log *slog.Logger) *UsageBatcher {
	b := NewUsageBatcher(sink, UsageOptions{FlushInterval: cfg.UsageFlushInterval, MaxPending: cfg.UsageMaxPending, Logger: log})
	go b.Run(ctx)
	return b
}
