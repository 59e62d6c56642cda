// Command manage-tokens is the manage-tokens function as a deployable
// (Knative Service or OpenFaaS function): /manage/tokens… over PostgreSQL (or
// SQLite), with revocations broadcast to every proxy through Redis.
package main

import (
	"context"
	"errors"
	"log/slog"

	managetokens "github.com/llm-proxy/llm-proxy/functions/manage-tokens"
	"github.com/llm-proxy/llm-proxy/shared/bootstrap"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/mgmtauth"
	"github.com/llm-proxy/llm-proxy/shared/platform"
	"github.com/llm-proxy/llm-proxy/shared/web"
)

const name = "manage-tokens"

func main() { platform.Main(name, run) }

func run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	if cfg.Server.ManagementToken == "" {
		return errors.New("MANAGEMENT_TOKEN is required (e.g. openssl rand -base64 32, shared by every function)")
	}
	d, err := bootstrap.Open(ctx, cfg, log, bootstrap.Options{})
	if err != nil {
		return err
	}
	rt := platform.New(name, log, cfg.Server.ShutdownGrace, d.Checks()...)
	rt.OnDrain(d.Close)
	rec, err := d.Audit()
	if err != nil {
		return err
	}
	h := managetokens.New(managetokens.Deps{
		Service: d.Management(rec, d.Invalidation(ctx)),
		Auth:    d.ManagementAuth(mgmtauth.StaticToken(cfg.Server.ManagementToken), rec, "management_api"),
		Log:     log,
	})
	return rt.ServeHTTPFunction(platform.Port(cfg), web.Chain(log, h))
}
