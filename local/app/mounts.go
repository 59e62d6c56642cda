package app

import (
	"context"
	"net/http"
	"strings"

	adminui "github.com/llm-proxy/llm-proxy/functions/admin-ui"
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

// mountAdmin mounts the admin UI under ADMIN_UI_PATH (it expects unstripped
// paths) and redirects / to it.
func mountAdmin(mux *http.ServeMux, d *bootstrap.Deps, svc *management.Service, verify mgmtauth.Verifier) error {
	if !d.Config.Admin.Enabled {
		return nil
	}
	h, err := adminUI(d, svc, verify)
	if err != nil {
		return err
	}
	base := strings.TrimRight(d.Config.Admin.Path, "/")
	mux.Handle(base+"/", h)
	mux.Handle(base, h)
	mux.Handle("GET /{$}", http.RedirectHandler(base+"/", http.StatusFound))
	return nil
}

// adminUI builds the admin UI handler.
func adminUI(d *bootstrap.Deps, svc *management.Service, verify mgmtauth.Verifier) (http.Handler, error) {
	cfg, err := d.AdminConfig()
	if err != nil {
		return nil, err
	}
	return adminui.New(adminui.Deps{
		Service: svc, Reader: d.Store, VerifyManagementToken: verify,
		BasePath: strings.TrimRight(cfg.Path, "/"), Config: cfg,
		TrustedProxies: d.Config.Server.TrustedProxyPrefixes(), Log: d.Log,
	})
}
