package httpcache

import (
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"

	"github.com/llm-proxy/llm-proxy/shared/config"
)

// OptionsFromConfig maps the HTTP_CACHE_* variables to Options.
func OptionsFromConfig(cfg config.Cache) Options {
	o := Options{
		DefaultTTL:     cfg.DefaultTTL.D(),
		MaxTTL:         cfg.MaxTTL.D(),
		MaxObjectBytes: cfg.MaxObjectBytes,
		Paths:          cfg.PathList(),
		SkipStreams:    !bool(cfg.StreamResponses),
		Debug:          bool(cfg.Debug),
	}
	if cfg.Backend == "redis" {
		o.Timeout = cfg.RedisTimeout.D()
	}
	return o
}

// Open builds the cache the configuration asks for: nil (disabled) when
// HTTP_CACHE_ENABLED is false, else a Memory or Redis backed Cache. The Redis
// backend uses its own client for REDIS_CACHE_URL, else shared (the
// process's client for REDIS_ADDR; every cache call is bounded by
// REDIS_CACHE_TIMEOUT through its context). Close the returned Cache to
// release what it opened.
func Open(cfg config.Cache, shared redis.UniversalClient, log *slog.Logger) (*Cache, error) {
	if !cfg.Enabled {
		return nil, nil
	}
	opts := OptionsFromConfig(cfg)
	if cfg.Backend != "redis" {
		return New(NewMemory(cfg.MaxBytes, nil), opts, log), nil
	}
	if cfg.RedisURL == "" {
		if shared == nil {
			return nil, fmt.Errorf("HTTP_CACHE_BACKEND=redis needs REDIS_CACHE_URL or REDIS_ADDR")
		}
		return New(NewRedis(shared, cfg.RedisKeyPrefix), opts, log), nil
	}
	ropts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_CACHE_URL: invalid redis URL")
	}
	t := cfg.RedisTimeout.D()
	ropts.DialTimeout, ropts.ReadTimeout, ropts.WriteTimeout = t, t, t
	client := redis.NewClient(ropts)
	c := New(NewRedis(client, cfg.RedisKeyPrefix), opts, log)
	c.closer = client
	return c, nil
}
