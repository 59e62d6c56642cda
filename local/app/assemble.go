package app

import (
	"context"
	"fmt"
	"net/http"
	"time"

	manageprojects "github.com/llm-proxy/llm-proxy/functions/manage-projects"
	managetokens "github.com/llm-proxy/llm-proxy/functions/manage-tokens"
	"github.com/llm-proxy/llm-proxy/functions/proxy"
	"github.com/llm-proxy/llm-proxy/shared/bootstrap"
	"github.com/llm-proxy/llm-proxy/shared/buildinfo"
	"github.com/llm-proxy/llm-proxy/shared/mgmtauth"
	"github.com/llm-proxy/llm-proxy/shared/web"
)

// assemble mounts every function on one mux — each mount is one line — and
// returns it wrapped in the standard middleware.
func assemble(ctx context.Context, d *bootstrap.Deps, verify mgmtauth.Verifier) (http.Handler, error) {
	log := d.Log
	inv := d.Invalidation(ctx)
	rec, err := d.Audit()
	if err != nil {
		return nil, err
	}
	emitter, err := mountEvents(ctx, d)
	if err != nil {
		return nil, err
	}
	svc := d.Management("serve", rec, inv, emitter)
	api, err := proxy.LoadAPI(d)
	if err != nil {
		return nil, err
	}
	cache, err := d.Cache(api.CacheEndpoints...)
	if err != nil {
		return nil, fmt.Errorf("response cache: %w", err)
	}

	mux := http.NewServeMux()
	health := web.Health(buildinfo.Version(), 2*time.Second, d.Checks()...)
	mux.Handle("GET /health", health)
	mux.Handle("GET /live", health)
	mux.Handle("GET /ready", health)

	auth := d.ManagementAuth(verify, rec, "management_api") // one failure budget for all management routes
	projects := manageprojects.New(manageprojects.Deps{Service: svc, Auth: auth, Cache: purger(cache), Log: log})
	for _, p := range []string{"/manage/projects", "/manage/projects/", "/manage/audit", "/manage/audit/", "/manage/usage", "/manage/cache/"} {
		mux.Handle(p, projects)
	}
	tokensFn := managetokens.New(managetokens.Deps{Service: svc, Auth: auth, Log: log})
	mux.Handle("/manage/tokens", tokensFn)
	mux.Handle("/manage/tokens/", tokensFn)

	if err := mountProxy(ctx, mux, d, proxy.Wiring{API: api, Invalidation: inv, Cache: cache, Events: emitter}); err != nil {
		return nil, err
	}
	if err := mountAdmin(mux, d, svc, verify); err != nil {
		return nil, err
	}
	mux.Handle("/", noRoute(log))
	return web.Chain(log, mux), nil
}
