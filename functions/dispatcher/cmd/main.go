// Command dispatcher is the dispatcher function as a deployable: a
// functions-framework CloudEvent function that delivers request events to one
// backend (DISPATCHER_SERVICE: file, lunary, helicone or webhook), once per
// (source, id) thanks to de-duplication in Redis. Deploy it once per backend,
// each behind its own Trigger.
package main

import (
	"context"
	"log/slog"

	"github.com/llm-proxy/llm-proxy/functions/dispatcher"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/platform"
	"github.com/llm-proxy/llm-proxy/shared/redisconn"
	"github.com/llm-proxy/llm-proxy/shared/web"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

const name = "dispatcher"

func main() { platform.Main(name, run) }

func run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	var rdb redis.UniversalClient
	var checks []web.Check
	if client := redisconn.New(cfg.Redis); client != nil {
		defer client.Close()
		rdb = client
		checks = append(checks, web.Check{Name: "redis", Check: func(ctx context.Context) error { return client.Ping(ctx).Err() }})
	} else {
		log.Warn("REDIS_ADDR is not set: de-duplication is per instance (in memory)")
	}
	d, err := dispatcher.FromConfig(cfg, rdb, cfg.Events.FileEventLog, log, prometheus.NewRegistry())
	if err != nil {
		return err
	}
	rt := platform.New(name, log, cfg.Server, checks...)
	return rt.ServeHTTPFunction(platform.Port(cfg), d.Handler())
}
