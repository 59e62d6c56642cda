// Command proxy is the proxy function as a deployable (Knative Service or
// OpenFaaS function): /v1/* with token checks, limits in Redis, the response
// cache, key swap, streaming, usage counting and a CloudEvent per request to
// K_SINK.
package main

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/llm-proxy/llm-proxy/functions/proxy"
	"github.com/llm-proxy/llm-proxy/shared/bootstrap"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/platform"
	"github.com/llm-proxy/llm-proxy/shared/web"
)

const name = "proxy"

func main() { platform.Main(name, run) }

func run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	d, err := bootstrap.OpenFunction(ctx, name, cfg, log)
	if err != nil {
		return err
	}
	if d.Redis == nil {
		log.Warn("REDIS_ADDR is not set: limits, revocation and the cache are per instance; run a single instance or set REDIS_ADDR")
	}
	api, err := proxy.LoadAPI(d.Deps)
	if err != nil {
		return err
	}
	cache, err := d.Cache(api.CacheEndpoints...)
	if err != nil {
		return err
	}
	emitter, err := d.Emitter(name, nil)
	if err != nil {
		return err
	}
	p, err := proxy.FromConfig(ctx, d.Deps, proxy.Wiring{API: api, Invalidation: d.Invalidation(ctx), Cache: cache, Events: emitter})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", p)
	if cfg.Proxy.EnableMetrics {
		p.MetricsRoutes(mux, cfg.Proxy.MetricsPath, d.Registry)
	}
	return d.Runtime.ServeHTTPFunction(platform.Port(cfg), web.Chain(log, mux))
}
