// Command manage-projects is the manage-projects function as a deployable
// (Knative Service or OpenFaaS function): /manage/projects…, /manage/audit…
// and /manage/cache/purge over PostgreSQL (or SQLite) and Redis.
package main

import (
	"context"
	"log/slog"

	manageprojects "github.com/llm-proxy/llm-proxy/functions/manage-projects"
	"github.com/llm-proxy/llm-proxy/shared/bootstrap"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/management"
	"github.com/llm-proxy/llm-proxy/shared/platform"
	"github.com/llm-proxy/llm-proxy/shared/web"
)

const name = "manage-projects"

func main() { platform.Main(name, run) }

func run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	f, err := bootstrap.OpenManagementFunction(ctx, name, cfg, log)
	if err != nil {
		return err
	}
	var purger management.CachePurger
	if cfg.Cache.Enabled && cfg.Cache.Backend == "redis" { // an in-memory cache lives in the proxy, out of reach
		c, err := f.Cache()
		if err != nil {
			return err
		}
		purger = c
	}
	h := manageprojects.New(manageprojects.Deps{Service: f.Service, Auth: f.Auth, Cache: purger, Log: log})
	return f.Runtime.ServeHTTPFunction(platform.Port(cfg), web.Chain(log, h))
}
