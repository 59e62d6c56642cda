package app

import (
	"context"
	"net/http"

	"github.com/llm-proxy/llm-proxy/functions/proxy"
	"github.com/llm-proxy/llm-proxy/shared/bootstrap"
	"github.com/llm-proxy/llm-proxy/shared/httpcache"
	"github.com/llm-proxy/llm-proxy/shared/management"
	"github.com/llm-proxy/llm-proxy/shared/mgmtauth"
)

// purger returns the cache as a CachePurger, or nil (not a typed nil) when
// caching is disabled.
func purger(c *httpcache.Cache) management.CachePurger {
	if c == nil {
		return nil
	}
	return c
}

// mountProxy mounts the proxy at /v1/ and the metrics endpoints.
func mountProxy(ctx context.Context, mux *http.ServeMux, d *bootstrap.Deps, w proxy.Wiring) error {
	p, err := proxy.FromConfig(ctx, d, w)
	if err != nil {
		return err
	}
	mux.Handle("/v1/", p)
	if d.Config.Proxy.EnableMetrics {
		p.MetricsRoutes(mux, d.Config.Proxy.MetricsPath, d.Registry)
	}
	return nil
}

func mountAdmin(ctx context.Context, mux *http.ServeMux, d *bootstrap.Deps, svc *management.Service, verify mgmtauth.Verifier) error {
	return nil
}
