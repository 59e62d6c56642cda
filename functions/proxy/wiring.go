package proxy

import (
	"context"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/llm-proxy/llm-proxy/shared/apiconfig"
	"github.com/llm-proxy/llm-proxy/shared/bootstrap"
	"github.com/llm-proxy/llm-proxy/shared/httpcache"
	"github.com/llm-proxy/llm-proxy/shared/ratelimit"
	"github.com/llm-proxy/llm-proxy/shared/usage"
)

// Wiring are the process-level parts the proxy shares with other functions
// of the same process (llm-proxy serve) or builds alone (the deployable).
type Wiring struct {
	// API is the provider (LoadAPI); nil: loaded from API_CONFIG_PATH.
	API          *apiconfig.Provider
	Invalidation bootstrap.Invalidation
	Cache        *httpcache.Cache // nil: no response cache
	Events       EventSink        // nil: no events
}

// FromConfig builds the proxy from the process's shared dependencies: the
// provider file (API_CONFIG_PATH), token validation subscribed to the
// invalidation bus, the configured limiter, batched usage counters, and a
// tokenizer that warms in the background (never blocking readiness).
func FromConfig(ctx context.Context, d *bootstrap.Deps, w Wiring) (*Proxy, error) {
	api := w.API
	if api == nil {
		var err error
		if api, err = LoadAPI(d); err != nil {
			return nil, err
		}
	}
	limiter, err := d.Limiter()
	if err != nil {
		return nil, fmt.Errorf("rate limiter: %w", err)
	}
	counter := usage.NewCounter()
	go counter.Warm()
	// Reservations are settled in the background; the settler is closed
	// (drained) with the process's other parts, before the Redis client.
	settler := ratelimit.NewSettler(ratelimit.SettlerOptions{Log: d.Log})
	d.OnClose(func(ctx context.Context) {
		if err := settler.Close(ctx); err != nil {
			d.Log.Warn("rate limit settler not drained", "error", err.Error())
		}
	})
	deps := Deps{
		Config:  d.Config.Proxy,
		API:     api,
		Auth:    d.Validator(w.Invalidation),
		Limiter: limiter,
		Settler: settler,
		Usage:   d.UsageBatcher(ctx),
		Counter: counter,
		Events:  w.Events,
		Log:     d.Log,
	}
	if w.Cache != nil {
		deps.Cache = w.Cache.Middleware
	}
	return New(deps)
}

// LoadAPI reads the provider selected by DEFAULT_API_PROVIDER from
// API_CONFIG_PATH, or the built-in OpenAI default (pointed at OPENAI_API_URL
// when set).
func LoadAPI(d *bootstrap.Deps) (*apiconfig.Provider, error) {
	api, err := apiconfig.Load(d.Config.Proxy.APIConfigPath, d.Config.Proxy.DefaultAPIProvider)
	if err != nil || d.Config.Proxy.APIConfigPath != "" || d.Config.Upstream.BaseURL == "" {
		return api, err
	}
	return api.WithBaseURL(d.Config.Upstream.BaseURL)
}

// MetricsRoutes mounts the metrics endpoints at METRICS_PATH (when
// ENABLE_METRICS): Prometheus text at <path> and <path>/prometheus (the
// original's path, used by its dashboards), the original's JSON counters at
// <path>/json. others (the process's other registries: limiter, cache,
// events) are merged into the Prometheus output.
func (p *Proxy) MetricsRoutes(mux *http.ServeMux, path string, others ...prometheus.Gatherer) {
	g := append(prometheus.Gatherers{p.metrics.Registry}, others...)
	prom := promhttp.HandlerFor(g, promhttp.HandlerOpts{})
	mux.Handle("GET "+path, prom)
	mux.Handle("GET "+path+"/prometheus", prom)
	mux.Handle("GET "+path+"/json", p.metrics.JSONMetricsHandler())
}
