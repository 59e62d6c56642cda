// Command manage-tokens is the manage-tokens function as a deployable
// (Knative Service or OpenFaaS function): /manage/tokens… over PostgreSQL,
// with revocations broadcast to every proxy through Redis. Everything the
// image contains is composed here.
package main

import (
	"context"
	"log/slog"
	"net"

	"github.com/llm-proxy/llm-proxy/events"
	"github.com/llm-proxy/llm-proxy/events/eventsconfig"
	managetokens "github.com/llm-proxy/llm-proxy/functions/manage-tokens"
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

const name = "manage-tokens"

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

	svc := management.New(management.Deps{
		Store: st, Keyring: kr, Audit: rec, Log: log,
		Invalidator: tokens.NewInvalidation(ctx, rdb, cfg.Redis.KeyPrefix+"tokens:invalidate", log),
		Changes:     events.Changes{Sink: emitter, Source: cfg.Events.SourceFor(name)},
	})
	auth := mgmtauth.FromConfig(mgmtauth.StaticToken(cfg.Server.ManagementToken), cfg.Audit, rec, log)
	h := managetokens.New(managetokens.Deps{Service: svc, Auth: auth, Log: log})

	ln, err := net.Listen("tcp", process.FunctionAddr(cfg.Server))
	if err != nil {
		return err
	}
	return process.Serve(ctx, log, ln, web.Chain(log, h), process.ServerOptions(cfg.Server, append(redisconn.Checks(rdb), web.Check{Name: "database", Check: st.Ping})...))
}
