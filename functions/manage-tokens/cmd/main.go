// Command manage-tokens is the manage-tokens function as a deployable
// (Knative Service or OpenFaaS function): /manage/tokens… over PostgreSQL (or
// SQLite), with revocations broadcast to every proxy through Redis.
package main

import (
	"context"
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
	d, rec, err := bootstrap.OpenManagementFunction(ctx, name, cfg, log)
	if err != nil {
		return err
	}
	svc, err := d.ManagementService(ctx, name, rec)
	if err != nil {
		return err
	}
	h := managetokens.New(managetokens.Deps{
		Service: svc,
		Auth:    d.ManagementAuth(mgmtauth.StaticToken(cfg.Server.ManagementToken), rec, "management_api"),
		Log:     log,
	})
	return d.Runtime.ServeHTTPFunction(platform.Port(cfg), web.Chain(log, h))
}
