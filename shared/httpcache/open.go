package httpcache

import (
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"

	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/redisconn"
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
// client comes from REDIS_CACHE_URL, else REDIS_ADDR/REDIS_DB/REDIS_PASSWORD;
// Close the returned Cache to release it.
func Open(cfg config.Cache, rcfg config.Redis, log *slog.Logger) (*Cache, error) {
	if !cfg.Enabled {
		return nil, nil
	}
	opts := OptionsFromConfig(cfg)
	switch cfg.Backend {
	case "redis":
		var ropts *redis.Options
		switch {
		case cfg.RedisURL != "":
			o, err := redis.ParseURL(cfg.RedisURL)
			if err != nil {
				return nil, fmt.Errorf("REDIS_CACHE_URL: invalid redis URL")
			}
			ropts = o
		case rcfg.Addr != "":
			ropts = redisconn.Options(rcfg)
		default:
			return nil, fmt.Errorf("HTTP_CACHE_BACKEND=redis needs REDIS_CACHE_URL or REDIS_ADDR")
		}
		t := cfg.RedisTimeout.D()
		ropts.DialTimeout, ropts.ReadTimeout, ropts.WriteTimeout = t, t, t
		client := redis.NewClient(ropts)
		c := New(NewRedis(client, cfg.RedisKeyPrefix), opts, log)
		c.closer = client
		return c, nil
	default:
		return New(NewMemory(cfg.MaxBytes, nil), opts, log), nil
	}
}
