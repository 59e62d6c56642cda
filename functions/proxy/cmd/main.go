// Command proxy is the proxy function as a deployable (Knative Service or
// OpenFaaS function): /v1/* with token checks, limits in Redis, the response
// cache, key swap, streaming, usage counting and a CloudEvent per request to
// K_SINK. Everything the image contains is composed here.
package main

import (
	"context"
	"log/slog"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/llm-proxy/llm-proxy/events/eventsconfig"
	"github.com/llm-proxy/llm-proxy/functions/proxy"
	"github.com/llm-proxy/llm-proxy/shared/apiconfig"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/httpcache"
	"github.com/llm-proxy/llm-proxy/shared/process"
	"github.com/llm-proxy/llm-proxy/shared/ratelimit"
	"github.com/llm-proxy/llm-proxy/shared/redisconn"
	"github.com/llm-proxy/llm-proxy/shared/secrets"
	"github.com/llm-proxy/llm-proxy/shared/store/postgres"
	"github.com/llm-proxy/llm-proxy/shared/tokens"
	"github.com/llm-proxy/llm-proxy/shared/usage"
	"github.com/llm-proxy/llm-proxy/shared/web"
)

const name = "proxy"

func main() { process.Main(name, run) }

func run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	// Resources: nothing here dials; the pool and the client connect on first use.
	kr, err := secrets.KeyringFromConfig(cfg.Secrets, "")
	if err != nil {
		return err
	}
	st, err := postgres.Open(ctx, cfg.Database)
	if err != nil {
		return err
	}
	defer st.Close()
	rdb := redisconn.New(cfg.Redis)
	if rdb == nil {
		log.Warn("REDIS_ADDR is not set: limits, revocation and the cache are per instance; run a single instance or set REDIS_ADDR")
	} else {
		defer rdb.Close()
	}
	reg := prometheus.NewRegistry()

	// Services, each closed (drained) after the server drained, newest first.
	api, err := apiconfig.Configured(cfg.Proxy, cfg.Upstream)
	if err != nil {
		return err
	}
	inv := tokens.NewInvalidation(ctx, rdb, cfg.Redis.KeyPrefix+"tokens:invalidate", log)
	limiter, closeLimiter, err := ratelimit.Open(cfg.Limits, redisconn.Universal(rdb), cfg.Redis.KeyPrefix, log, reg)
	if err != nil {
		return err
	}
	defer process.Close(log, "rate limit leases", closeLimiter)
	settler := ratelimit.NewSettler(ratelimit.SettlerOptions{Log: log})
	defer process.Close(log, "rate limit settler", settler.Close)
	usageBatcher := tokens.StartUsageBatcher(ctx, st.AddUsage, cfg.Tokens, log)
	defer process.Close(log, "usage counters", usageBatcher.Close)
	cache, err := httpcache.Open(cfg.Cache.WithPaths(api.CacheEndpoints...), redisconn.Universal(rdb), log)
	if err != nil {
		return err
	}
	if cache != nil {
		reg.MustRegister(cache.Collectors()...)
		defer cache.Close()
	}
	pub, err := eventsconfig.NewFunctionPublisher(cfg.Events, redisconn.Universal(rdb))
	if err != nil {
		return err
	}
	emitter := eventsconfig.NewEmitter(cfg, name, pub, reg, log)
	defer process.Close(log, "event queue", emitter.Close)
	counter := usage.NewCounter()
	go counter.Warm() // never blocks readiness

	deps := proxy.Deps{
		Config: cfg.Proxy, API: api, Auth: tokens.NewValidatorFromConfig(st, kr, cfg.Tokens, inv),
		Limiter: limiter, Settler: settler, Usage: usageBatcher, Counter: counter, Events: emitter, Log: log,
	}
	if cache != nil { // not a typed nil
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
	ln, err := net.Listen("tcp", process.FunctionAddr(cfg.Server))
	if err != nil {
		return err
	}
	return process.Serve(ctx, log, ln, web.Chain(log, mux), process.ServerOptions(cfg.Server, append(redisconn.Checks(rdb), web.Check{Name: "database", Check: st.Ping})...))
}
