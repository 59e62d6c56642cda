package app

import (
	"context"
	"net/http"

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

// TODO(lead): the proxy, admin UI and dispatcher mounts land with their functions.
func mountEvents(ctx context.Context, mux *http.ServeMux, d *bootstrap.Deps, selfURL string) error {
	return nil
}

func mountProxy(ctx context.Context, mux *http.ServeMux, d *bootstrap.Deps, inv bootstrap.Invalidation, cache *httpcache.Cache) error {
	return nil
}

func mountAdmin(ctx context.Context, mux *http.ServeMux, d *bootstrap.Deps, svc *management.Service, verify mgmtauth.Verifier) error {
	return nil
}
