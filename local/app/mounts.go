package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/llm-proxy/llm-proxy/events"
	adminui "github.com/llm-proxy/llm-proxy/functions/admin-ui"
	"github.com/llm-proxy/llm-proxy/functions/proxy"
	"github.com/llm-proxy/llm-proxy/shared/apiconfig"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/httpcache"
	"github.com/llm-proxy/llm-proxy/shared/management"
	"github.com/llm-proxy/llm-proxy/shared/mgmtauth"
	"github.com/llm-proxy/llm-proxy/shared/process"
	"github.com/llm-proxy/llm-proxy/shared/ratelimit"
	"github.com/llm-proxy/llm-proxy/shared/redisconn"
	"github.com/llm-proxy/llm-proxy/shared/secrets"
	"github.com/llm-proxy/llm-proxy/shared/store"
	"github.com/llm-proxy/llm-proxy/shared/tokens"
	"github.com/llm-proxy/llm-proxy/shared/usage"
)

// proxyParts are what the proxy shares with the other functions of serve.
type proxyParts struct {
	store   store.Store
	keyring *secrets.Keyring
	redis   *redis.Client
	api     *apiconfig.Provider
	inv     tokens.Invalidation
	cache   *httpcache.Cache
	events  *events.Emitter
	reg     *prometheus.Registry
	log     *slog.Logger
}

// servedProxy is the proxy with what releases its own parts.
type servedProxy struct {
	handler *proxy.Proxy
	closers []func()
}

func (s servedProxy) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
}

// newProxy composes the proxy function with its own parts: the limiter,
// the settler of reservations, batched usage counters and the tokenizer.
func newProxy(ctx context.Context, cfg config.Config, pp proxyParts) (servedProxy, error) {
	var sp servedProxy
	limiter, closeLimiter, err := ratelimit.Open(cfg.Limits, redisconn.Universal(pp.redis), cfg.Redis.KeyPrefix, pp.log, pp.reg)
	if err != nil {
		return sp, err
	}
	sp.closers = append(sp.closers, func() { process.Close(pp.log, "rate limit leases", closeLimiter) })
	settler := ratelimit.NewSettler(ratelimit.SettlerOptions{Log: pp.log})
	sp.closers = append(sp.closers, func() { process.Close(pp.log, "rate limit settler", settler.Close) })
	usageBatcher := tokens.StartUsageBatcher(ctx, pp.store.AddUsage, cfg.Tokens, pp.log)
	sp.closers = append(sp.closers, func() { process.Close(pp.log, "usage counters", usageBatcher.Close) })
	counter := usage.NewCounter()
	go counter.Warm() // never blocks readiness
	deps := proxy.Deps{
		Config: cfg.Proxy, API: pp.api, Auth: tokens.NewValidatorFromConfig(pp.store, pp.keyring, cfg.Tokens, pp.inv),
		Limiter: limiter, Settler: settler, Usage: usageBatcher, Counter: counter, Events: pp.events, Log: pp.log,
	}
	if pp.cache != nil {
		deps.Cache = pp.cache
	}
	sp.handler, err = proxy.New(deps)
	if err != nil {
		sp.close()
	}
	return sp, err
}

// mountAdmin mounts the admin UI at its base path (ADMIN_UI_PATH; it expects
// unstripped paths) and redirects / to it. At the root (ADMIN_UI_PATH=/) the
// UI also answers every path no other function owns; root reports that.
func mountAdmin(mux *http.ServeMux, cfg config.Config, svc *management.Service, st store.Store, kr *secrets.Keyring, verify mgmtauth.Verifier, budget mgmtauth.SharedBudget, log *slog.Logger) (root bool, err error) {
	if !cfg.Admin.Enabled {
		return false, nil
	}
	adminCfg, err := adminui.WithSessionKey(cfg.Admin, kr.DeriveKey)
	if err != nil {
		return false, err
	}
	if cfg.Server.ManagementToken == "" {
		// The generated token is known by its digest (managementVerifier
		// stored it before): sessions of an earlier token are refused.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		digest, err := st.GetSetting(ctx, settingManagementTokenHash)
		cancel()
		if err != nil {
			return false, fmt.Errorf("admin ui: read the management token's digest: %w", err)
		}
		adminCfg = adminCfg.WithManagementTokenDigest(digest)
	}
	base := adminCfg.ServePath()
	h, err := adminui.New(adminui.Deps{
		Service: svc, Reader: st, VerifyManagementToken: verify,
		BasePath: base, Config: adminCfg, TrustedProxies: cfg.Server.TrustedProxyPrefixes(), Log: log,
		Redis: budget.Redis, RedisKeyPrefix: budget.KeyPrefix, Metrics: budget.Metrics,
		// PUBLIC_BASE_URL + /v1 in the new-token example; unset: the request's origin
		ProxyURL: cfg.Server.OpenAIBaseURL(),
	})
	if err != nil {
		return false, err
	}
	if base == "" {
		mux.Handle("/", h)
		return true, nil
	}
	mux.Handle(base+"/", h)
	mux.Handle(base, h)
	mux.Handle("GET /{$}", http.RedirectHandler(base+"/", http.StatusFound))
	return false, nil
}
