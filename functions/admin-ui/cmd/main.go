// Command admin-ui is the admin web UI as a deployable. It uses the shared
// library directly (no HTTP hop to the management API). It answers both at
// ADMIN_UI_PATH and at the root, so it works whether the route in front of it
// (a Gateway API rewrite, the OpenFaaS gateway's /function/<name> prefix)
// strips the prefix or not; its links always carry ADMIN_UI_PATH.
// Everything the image contains is composed here.
package main

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"github.com/llm-proxy/llm-proxy/events"
	"github.com/llm-proxy/llm-proxy/events/eventsconfig"
	adminui "github.com/llm-proxy/llm-proxy/functions/admin-ui"
	"github.com/llm-proxy/llm-proxy/shared/audit"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/management"
	"github.com/llm-proxy/llm-proxy/shared/mgmtauth"
	"github.com/llm-proxy/llm-proxy/shared/process"
	"github.com/llm-proxy/llm-proxy/shared/redisconn"
	"github.com/llm-proxy/llm-proxy/shared/secrets"
	"github.com/llm-proxy/llm-proxy/shared/store/postgres"
	"github.com/llm-proxy/llm-proxy/shared/tokens"
	"github.com/llm-proxy/llm-proxy/shared/web"
)

const name = "admin-ui"

func main() { process.Main(name, run) }

func run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	if err := cfg.Server.RequireManagementToken(); err != nil {
		return err
	}
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
	if rdb != nil {
		defer rdb.Close()
	}
	rec, err := audit.Open(cfg.Audit, st, cfg.Server.TrustedProxyPrefixes(), log)
	if err != nil {
		return err
	}
	defer rec.Close()
	pub, err := eventsconfig.NewFunctionPublisher(cfg.Events, redisconn.Universal(rdb))
	if err != nil {
		return err
	}
	emitter := eventsconfig.NewEmitter(cfg, name, pub, nil, log)
	defer process.Close(log, "event queue", emitter.Close)
	adminCfg, err := adminui.WithSessionKey(cfg.Admin, kr.DeriveKey)
	if err != nil {
		return err
	}

	svc := management.New(management.Deps{
		Store: st, Keyring: kr, Audit: rec, Log: log,
		Invalidator: tokens.NewInvalidation(ctx, rdb, cfg.Redis.KeyPrefix+"tokens:invalidate", log),
		Changes:     events.Changes{Sink: emitter, Source: cfg.Events.SourceFor(name)},
	})
	base := strings.TrimRight(adminCfg.Path, "/")
	h, err := adminui.New(adminui.Deps{
		Service: svc, Reader: st, VerifyManagementToken: mgmtauth.StaticToken(cfg.Server.ManagementToken),
		BasePath: base, Config: adminCfg, TrustedProxies: cfg.Server.TrustedProxyPrefixes(), Log: log,
	})
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", process.FunctionAddr(cfg.Server))
	if err != nil {
		return err
	}
	return process.Serve(ctx, log, ln, web.Chain(log, withBasePath(base, h)), process.ServerOptions(cfg.Server, append(redisconn.Checks(rdb), web.Check{Name: "database", Check: st.Ping})...))
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
