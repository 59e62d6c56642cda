package config

import (
	"fmt"
	"time"
)

// maxLease bounds RATE_LIMIT_LEASE: a larger lease only holds more capacity
// unused in one process.
const maxLease = 10000

// Limits configures where rate limits and quotas are kept (shared/ratelimit)
// and what happens when that store is unreachable. The limits themselves are
// set per project and token through the management API; the reservation used
// when a request sets no max_tokens is DEFAULT_RESERVE_TOKENS (Proxy).
type Limits struct {
	Backend         string        `env:"RATE_LIMIT_BACKEND, default=auto" desc:"Where limits and quotas are counted: auto (redis when REDIS_ADDR is set, else memory), memory (this process only), or redis (shared by every process; requires REDIS_ADDR)."`
	FailurePolicy   string        `env:"RATE_LIMIT_FAILURE_POLICY, default=fail-closed" desc:"When Redis is unreachable: fail-closed (answer 503) or fail-open (a per-process in-memory limiter decides). Either way it is logged and counted in llm_proxy_ratelimit_backend_failures_total."`
	FailureCooldown time.Duration `env:"RATE_LIMIT_FAILURE_COOLDOWN, default=1s" desc:"After a Redis failure, how long the failure policy applies without trying Redis again (so an outage does not add a Redis timeout to every request)."`
	Lease           int64         `env:"RATE_LIMIT_LEASE, default=32" desc:"Redis limiter: the most requests of one token a single admission may charge at once, for this process to admit them without a round trip until the current second ends. A lease never takes more than 1/8 of what a limit has left, so limits are never exceeded; unused leased capacity is given back within a second. 0 or 1: every request is a round trip (see docs/rate-limits.md)."`
}

// UseRedis reports whether limits are kept in Redis, given whether
// REDIS_ADDR is set.
func (x Limits) UseRedis(redisConfigured bool) bool {
	switch x.Backend {
	case "redis":
		return true
	case "memory":
		return false
	}
	return redisConfigured
}

func (x Limits) validate() error {
	if err := oneOf("RATE_LIMIT_BACKEND", x.Backend, "auto", "memory", "redis"); err != nil {
		return err
	}
	if err := oneOf("RATE_LIMIT_FAILURE_POLICY", x.FailurePolicy, "fail-closed", "fail-open"); err != nil {
		return err
	}
	if x.FailureCooldown < 0 {
		return invalid("RATE_LIMIT_FAILURE_COOLDOWN", "must not be negative", x.FailureCooldown)
	}
	if x.Lease < 0 || x.Lease > maxLease {
		return invalid("RATE_LIMIT_LEASE", fmt.Sprintf("must be between 0 and %d", maxLease), x.Lease)
	}
	return nil
}
