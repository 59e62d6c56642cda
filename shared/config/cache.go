package config

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Cache configures the HTTP response cache (shared/httpcache).
type Cache struct {
	Enabled CacheBool `env:"HTTP_CACHE_ENABLED, default=true" desc:"Enable the HTTP response cache (true/false, 1/0, yes/no, on/off)."`
	Backend string    `env:"HTTP_CACHE_BACKEND, default=in-memory" desc:"in-memory (bounded by HTTP_CACHE_MAX_BYTES, LRU) or redis (REDIS_CACHE_URL, else REDIS_ADDR/REDIS_DB)."`
	// DefaultTTL applies to operator-enabled paths (HTTP_CACHE_PATHS) and to
	// GET responses without upstream freshness only when those are enabled.
	DefaultTTL CacheDuration `env:"HTTP_CACHE_DEFAULT_TTL, default=300s" desc:"Lifetime of entries stored for operator-enabled paths (HTTP_CACHE_PATHS); seconds (300) or a Go duration (5m)."`
	MaxTTL     CacheDuration `env:"HTTP_CACHE_MAX_TTL, default=24h" desc:"Upper bound for any entry's lifetime, whatever upstream or the client asks for; seconds or a Go duration."`
	// MaxObjectBytes bounds one response body (streams included); larger
	// responses pass through and are never stored.
	MaxObjectBytes int64  `env:"HTTP_CACHE_MAX_OBJECT_BYTES, default=1048576" desc:"Largest response body (streams included) that is stored; larger ones pass through uncached, never truncated."`
	MaxBytes       int64  `env:"HTTP_CACHE_MAX_BYTES, default=67108864" desc:"Byte budget of the in-memory backend; least recently used entries are evicted beyond it."`
	Paths          string `env:"HTTP_CACHE_PATHS" desc:"Comma-separated request paths (e.g. /v1/embeddings) whose successful POST/GET responses are cached for HTTP_CACHE_DEFAULT_TTL without client opt-in."`
	// StreamResponses lets completed SSE streams be stored and replayed.
	StreamResponses CacheBool `env:"HTTP_CACHE_STREAM_RESPONSES, default=true" desc:"Store completed streamed (SSE) responses and replay them event by event; partial or over-size streams are never stored."`
	Debug           CacheBool `env:"HTTP_CACHE_DEBUG, default=false" desc:"Expose the cache key and the reason a response was not stored (X-PROXY-CACHE-KEY, Cache-Status key/detail). Off in production."`

	RedisURL       string        `env:"REDIS_CACHE_URL" desc:"Redis URL for the cache backend (redis://[:password@]host:port/db). Empty: REDIS_ADDR and REDIS_DB."`
	RedisKeyPrefix string        `env:"REDIS_CACHE_KEY_PREFIX, default=llmproxy:cache:" desc:"Prefix of every cache key in Redis."`
	RedisTimeout   CacheDuration `env:"REDIS_CACHE_TIMEOUT, default=1s" desc:"Timeout of one cache call to Redis; a slow or broken cache is treated as a miss."`
}

// PathList returns Paths split and trimmed.
func (x Cache) PathList() []string {
	var out []string
	for _, p := range strings.Split(x.Paths, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// WithPaths returns x with extra POST endpoints cacheable beside
// HTTP_CACHE_PATHS (the provider file's cache_endpoints).
func (x Cache) WithPaths(extra ...string) Cache {
	if len(extra) > 0 {
		x.Paths = strings.Join(append(x.PathList(), extra...), ",")
	}
	return x
}

func (x Cache) validate() error {
	if err := oneOf("HTTP_CACHE_BACKEND", x.Backend, "in-memory", "redis"); err != nil {
		return err
	}
	if x.DefaultTTL <= 0 {
		return invalid("HTTP_CACHE_DEFAULT_TTL", "must be positive", x.DefaultTTL)
	}
	if x.MaxTTL <= 0 {
		return invalid("HTTP_CACHE_MAX_TTL", "must be positive", x.MaxTTL)
	}
	if x.MaxObjectBytes <= 0 {
		return invalid("HTTP_CACHE_MAX_OBJECT_BYTES", "must be positive", x.MaxObjectBytes)
	}
	if x.MaxBytes < x.MaxObjectBytes {
		return invalid("HTTP_CACHE_MAX_BYTES", "must be at least HTTP_CACHE_MAX_OBJECT_BYTES", x.MaxBytes)
	}
	for _, p := range x.PathList() {
		if !strings.HasPrefix(p, "/") {
			return invalid("HTTP_CACHE_PATHS", "every entry must be a path starting with /", p)
		}
	}
	if x.RedisURL != "" {
		u, err := url.Parse(x.RedisURL)
		if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") {
			return invalid("REDIS_CACHE_URL", "must be a redis://, rediss:// or unix:// URL", "<redacted>")
		}
	}
	if x.RedisTimeout <= 0 {
		return invalid("REDIS_CACHE_TIMEOUT", "must be positive", x.RedisTimeout)
	}
	return nil
}

// CacheDuration is a duration read from either whole seconds ("300") or a Go
// duration ("5m").
type CacheDuration time.Duration

// D returns the value as a time.Duration.
func (d CacheDuration) D() time.Duration { return time.Duration(d) }

func (d CacheDuration) String() string { return time.Duration(d).String() }

// EnvDecode implements envconfig.DecoderCtx.
func (d *CacheDuration) EnvDecode(_ context.Context, val string) error {
	val = strings.TrimSpace(val)
	if n, err := strconv.ParseInt(val, 10, 64); err == nil {
		*d = CacheDuration(time.Duration(n) * time.Second)
		return nil
	}
	v, err := time.ParseDuration(val)
	if err != nil {
		return fmt.Errorf("%q is neither whole seconds nor a duration such as 5m", val)
	}
	*d = CacheDuration(v)
	return nil
}

// CacheBool is a boolean that also accepts yes/no and on/off (the original
// accepted yes for HTTP_CACHE_ENABLED).
type CacheBool bool

// EnvDecode implements envconfig.DecoderCtx.
func (b *CacheBool) EnvDecode(_ context.Context, val string) error {
	switch strings.ToLower(strings.TrimSpace(val)) {
	case "1", "t", "true", "yes", "y", "on":
		*b = true
	case "0", "f", "false", "no", "n", "off":
		*b = false
	default:
		return fmt.Errorf("%q is not a boolean (true/false, 1/0, yes/no, on/off)", val)
	}
	return nil
}
