// Command admin-ui is the admin web UI as a deployable. It uses the shared
// library directly (no HTTP hop to the management API). It serves at the
// root unless ADMIN_UI_PATH names a base path; with one it answers both at
// ADMIN_UI_PATH and at the root, so it works whether the route in front of it
// (a Gateway API rewrite, the OpenFaaS gateway's /function/<name> prefix)
// strips the prefix or not; its links always carry ADMIN_UI_PATH.
// Everything the image contains is composed here.
package main

import (
	"context"
	"log/slog"
	"net/http"
	"strings"

	adminui "github.com/llm-proxy/llm-proxy/functions/admin-ui"
	"github.com/llm-proxy/llm-proxy/functions/internal/deployable"
	"github.com/llm-proxy/llm-proxy/functions/internal/mgmtplane"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/process"
)

const name = "admin-ui"

func main() { process.Main(name, run) }

func run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	res, err := deployable.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer res.Close()
	plane, err := mgmtplane.Open(ctx, name, cfg, res, log)
	if err != nil {
		return err
	}
	defer plane.Close()
	adminCfg, err := adminui.WithSessionKey(cfg.Admin, res.Keyring.DeriveKey)
	if err != nil {
		return err
	}

	base := adminCfg.FunctionPath()
	h, err := adminui.New(adminui.Deps{
		Service: plane.Service, Reader: res.Store, VerifyManagementToken: plane.Verify,
		BasePath: base, Config: adminCfg, TrustedProxies: cfg.Server.TrustedProxyPrefixes(), Log: log,
		Redis: res.RedisClient(), RedisKeyPrefix: cfg.Redis.KeyPrefix, // the sign-in failure budget, shared
		// PUBLIC_BASE_URL + /v1 in the new-token example; unset: the request's origin
		ProxyURL: cfg.Server.OpenAIBaseURL(),
	})
	if err != nil {
		return err
	}
	return res.Serve(ctx, cfg, log, withBasePath(base, h))
}

// withBasePath gives h the unstripped paths it expects: a request that
// arrives without the base path (stripped by the route in front) gets it
// back.
func withBasePath(base string, h http.Handler) http.Handler {
	if base == "" {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != base && !strings.HasPrefix(r.URL.Path, base+"/") {
			r = r.Clone(r.Context())
			r.URL.Path = base + r.URL.Path
			r.URL.RawPath = ""
		}
		h.ServeHTTP(w, r)
	})
}
