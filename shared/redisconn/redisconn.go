// Package redisconn builds the Redis client options of llm-proxy from
// REDIS_ADDR, REDIS_DB, REDIS_PASSWORD and REDIS_TIMEOUT, in one place. The
// client dials lazily: building it does no network I/O, and it never
// retries a command by itself.
package redisconn

import (
	"context"

	"github.com/redis/go-redis/v9"

	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/web"
)

// PoolSize is the connection pool of a process: large enough for a proxy's
// concurrency (one limiter call per request) without dialling per request.
const PoolSize = 256

// Options returns the client options for cfg.
func Options(cfg config.Redis) *redis.Options {
	return &redis.Options{
		Addr: cfg.Addr, DB: cfg.DB, Password: cfg.Password,
		DialTimeout: cfg.Timeout, ReadTimeout: cfg.Timeout, WriteTimeout: cfg.Timeout,
		PoolSize: PoolSize,
		// No retries: go-redis retries a command that timed out on a new
		// connection, while the first copy may still reach the server, so a
		// retried script would run twice (a rate limit admission charged
		// twice). Every call is one attempt bounded by REDIS_TIMEOUT; the
		// callers that need more retry themselves, with calls that are
		// idempotent (docs/guarantees.md).
		MaxRetries: -1,
		// RESP2: llm-proxy uses no RESP3 feature (push notifications,
		// client-side caching, maintenance notifications), and with RESP3
		// the client looks for pending push notifications around every
		// command — about 3% of the proxy function's CPU per request.
		Protocol: 2,
		// go-redis gives every connection 32 KiB read and write buffers; a
		// burst of concurrent streams grows the pool towards PoolSize and
		// those buffers stay for as long as the connections are idle (16–18
		// KiB per concurrent stream of the proxy function at 1,000 streams).
		// Commands and replies here are small; larger cached answers are
		// read past the buffer.
		ReadBufferSize:  4 << 10,
		WriteBufferSize: 4 << 10,
	}
}

// New returns a client for cfg, or nil when REDIS_ADDR is empty.
func New(cfg config.Redis) *redis.Client {
	if cfg.Addr == "" {
		return nil
	}
	return redis.NewClient(Options(cfg))
}

// Universal is c as the interface other packages take: nil (not a typed
// nil) when c is nil, i.e. without REDIS_ADDR.
func Universal(c *redis.Client) redis.UniversalClient {
	if c == nil {
		return nil
	}
	return c
}

// Checks is c's readiness check, or none when c is nil.
func Checks(c *redis.Client) []web.Check {
	if c == nil {
		return nil
	}
	return []web.Check{{Name: "redis", Check: func(ctx context.Context) error { return c.Ping(ctx).Err() }}}
}
