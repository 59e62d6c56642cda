package config

import "time"

// Tokens tunes the proxy's token validation cache and the background writing
// of token usage counters (shared/tokens).
type Tokens struct {
	CacheTTL         time.Duration `env:"TOKEN_CACHE_TTL, default=30s" desc:"How long a validated token is served from the proxy's memory. A safety net only: revocation and deactivation reach every instance within a second by invalidation (Redis pub/sub)."`
	NegativeCacheTTL time.Duration `env:"TOKEN_NEGATIVE_CACHE_TTL, default=5s" desc:"How long an unknown (well-formed) token is remembered as unknown, so floods of made-up tokens cost no database lookup."`
	CacheMaxEntries  int           `env:"TOKEN_CACHE_MAX_ENTRIES, default=100000" desc:"Most entries of the token validation cache per process; the oldest are evicted first."`

	UsageFlushInterval time.Duration `env:"USAGE_FLUSH_INTERVAL, default=1s" desc:"How often per-token request counters and last-used times are written to the database (batched, off the request path)."`
	UsageMaxPending    int           `env:"USAGE_MAX_PENDING_TOKENS, default=100000" desc:"Most tokens with counters waiting to be written; while the database is unreachable, usage of further tokens is dropped and logged."`
}

func (x Tokens) validate() error {
	switch {
	case x.CacheTTL <= 0:
		return invalid("TOKEN_CACHE_TTL", "must be a positive duration (e.g. 30s)", x.CacheTTL)
	case x.NegativeCacheTTL <= 0:
		return invalid("TOKEN_NEGATIVE_CACHE_TTL", "must be a positive duration (e.g. 5s)", x.NegativeCacheTTL)
	case x.CacheMaxEntries < 1:
		return invalid("TOKEN_CACHE_MAX_ENTRIES", "must be at least 1", x.CacheMaxEntries)
	case x.UsageFlushInterval <= 0:
		return invalid("USAGE_FLUSH_INTERVAL", "must be a positive duration (e.g. 1s)", x.UsageFlushInterval)
	case x.UsageMaxPending < 1:
		return invalid("USAGE_MAX_PENDING_TOKENS", "must be at least 1", x.UsageMaxPending)
	}
	return nil
}
