// Command proxy is the proxy function as a deployable (Knative Service or
// OpenFaaS function): /v1/* with token checks, limits in Redis, the response
// cache, key swap, streaming, usage counting and a CloudEvent per request to
// K_SINK. Everything the image contains is composed here.
package main

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/llm-proxy/llm-proxy/events/eventsconfig"
	"github.com/llm-proxy/llm-proxy/functions/internal/deployable"
	"github.com/llm-proxy/llm-proxy/functions/proxy"
	"github.com/llm-proxy/llm-proxy/shared/apiconfig"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/httpcache"
	"github.com/llm-proxy/llm-proxy/shared/process"
	"github.com/llm-proxy/llm-proxy/shared/ratelimit"
	"github.com/llm-proxy/llm-proxy/shared/tokens"
	"github.com/llm-proxy/llm-proxy/shared/usage"
)

const name = "proxy"

func main() { process.Main(name, run) }

func run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	res, err := deployable.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer res.Close()
	if res.Redis == nil {
		log.Warn("REDIS_ADDR is not set: limits, revocation and the cache are per instance; run a single instance or set REDIS_ADDR")
	}
	reg := prometheus.NewRegistry()

	// Services, each released after the server drained, newest first.
	api, err := apiconfig.Configured(cfg.Proxy, cfg.Upstream)
	if err != nil {
		return err
	}
	limiter, closeLimiter, err := ratelimit.Open(cfg.Limits, res.RedisClient(), cfg.Redis.KeyPrefix, log, reg)
	if err != nil {
		return err
	}
	defer process.Close(log, "rate limit leases", closeLimiter)
	settler := ratelimit.NewSettler(ratelimit.SettlerOptions{Log: log})
	defer process.Close(log, "rate limit settler", settler.Close)
	usageBatcher := tokens.StartUsageBatcher(ctx, res.Store.AddUsage, cfg.Tokens, log)
	defer process.Close(log, "usage counters", usageBatcher.Close)
	pub, err := eventsconfig.NewFunctionPublisher(cfg.Events, res.RedisClient())
	if err != nil {
		return err
	}
	outbox := eventsconfig.NewFunctionOutbox(cfg, name, res.RedisClient(), log)
	emitter := eventsconfig.NewEmitter(cfg, name, pub, outbox, reg, log)
	defer process.Close(log, "event queue", emitter.Close)
	counter := usage.NewCounter()
	go counter.Warm() // never blocks readiness

	inv := tokens.NewInvalidation(ctx, res.Redis, cfg.Redis.KeyPrefix+"tokens:invalidate", log)
	deps := proxy.Deps{
		Config: cfg.Proxy, API: api, Auth: tokens.NewValidatorFromConfig(res.Store, res.Keyring, cfg.Tokens, inv),
		Limiter: limiter, Settler: settler, Usage: usageBatcher, Counter: counter, Events: emitter, Log: log,
	}
	cache, err := httpcache.Open(cfg.Cache.WithPaths(api.CacheEndpoints...), res.RedisClient(), log)
	if err != nil {
		return err
	}
	if cache != nil { // else no cache: not a typed nil
		reg.MustRegister(cache.Collectors()...)
		defer cache.Close()
		deps.Cache = cache
	}
	p, err := proxy.New(deps)
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.Handle("/v1/", p)
	if cfg.Proxy.EnableMetrics {
		p.MetricsRoutes(mux, cfg.Proxy.MetricsPath, reg)
	}
	return res.Serve(ctx, cfg, log, mux)
}
