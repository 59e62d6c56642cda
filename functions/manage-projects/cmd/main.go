// Command manage-projects is the manage-projects function as a deployable
// (Knative Service or OpenFaaS function): /manage/projects…, /manage/audit…,
// /manage/usage and /manage/cache/purge over PostgreSQL and Redis.
// Everything the image contains is composed here.
package main

import (
	"context"
	"log/slog"

	"github.com/llm-proxy/llm-proxy/functions/internal/deployable"
	"github.com/llm-proxy/llm-proxy/functions/internal/mgmtplane"
	manageprojects "github.com/llm-proxy/llm-proxy/functions/manage-projects"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/httpcache"
	"github.com/llm-proxy/llm-proxy/shared/management"
	"github.com/llm-proxy/llm-proxy/shared/process"
)

const name = "manage-projects"

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
	// The purge reaches a Redis cache; an in-memory one lives in the
	// proxy, out of reach, and purging answers 400.
	var purger management.CachePurger
	if cfg.Cache.Enabled && cfg.Cache.Backend == "redis" {
		cache, err := httpcache.Open(cfg.Cache, res.RedisClient(), log)
		if err != nil {
			return err
		}
		defer cache.Close()
		purger = cache
	}

	h := manageprojects.New(manageprojects.Deps{Service: plane.Service, Auth: plane.Auth, Cache: purger, Log: log})
	return res.Serve(ctx, cfg, log, h)
}
