// Command manage-tokens is the manage-tokens function as a deployable
// (Knative Service or OpenFaaS function): /manage/tokens… over PostgreSQL,
// with revocations broadcast to every proxy through Redis. Everything the
// image contains is composed here.
package main

import (
	"context"
	"log/slog"

	"github.com/llm-proxy/llm-proxy/functions/internal/deployable"
	"github.com/llm-proxy/llm-proxy/functions/internal/mgmtplane"
	managetokens "github.com/llm-proxy/llm-proxy/functions/manage-tokens"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/process"
)

const name = "manage-tokens"

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

	h := managetokens.New(managetokens.Deps{Service: plane.Service, Auth: plane.Auth, Log: log})
	return res.Serve(ctx, cfg, log, h)
}
