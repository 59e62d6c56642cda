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
	"github.com/llm-proxy/llm-proxy/shared/platform"
	"github.com/llm-proxy/llm-proxy/shared/web"
)

const name = "manage-tokens"

func main() { platform.Main(name, run) }

func run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	f, err := bootstrap.OpenManagementFunction(ctx, name, cfg, log)
	if err != nil {
		return err
	}
	h := managetokens.New(managetokens.Deps{Service: f.Service, Auth: f.Auth, Log: log})
	return f.Runtime.ServeHTTPFunction(platform.Port(cfg), web.Chain(log, h))
}
