// Command dispatcher is the dispatcher function as a deployable: a
// functions-framework CloudEvent function that delivers request events to one
// backend (DISPATCHER_SERVICE: file, lunary, helicone or webhook), once per
// (source, id) thanks to de-duplication in Redis. Deploy it once per backend,
// each behind its own Trigger. Everything the image contains is composed
// here.
package main

import (
	"context"
	"io"
	"log/slog"
	"net"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/llm-proxy/llm-proxy/functions/dispatcher"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/process"
	"github.com/llm-proxy/llm-proxy/shared/redisconn"
)

const name = "dispatcher"

func main() { process.Main(name, run) }

func run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	rdb := redisconn.New(cfg.Redis)
	if rdb == nil {
		log.Warn("REDIS_ADDR is not set: de-duplication is per instance (in memory)")
	} else {
		defer rdb.Close()
	}
	events := cfg.Events
	if events.FileEventLog != "" { // the file backend at FILE_EVENT_LOG, as in llm-proxy serve
		events.DispatcherService, events.DispatcherEndpoint = dispatcher.ServiceFile, events.FileEventLog
	}
	d, err := dispatcher.FromConfig(events, redisconn.Universal(rdb), cfg.Redis.KeyPrefix, log, prometheus.NewRegistry())
	if err != nil {
		return err
	}
	if c, ok := d.Backend().(io.Closer); ok {
		defer c.Close()
	}
	ln, err := net.Listen("tcp", process.FunctionAddr(cfg.Server))
	if err != nil {
		return err
	}
	return process.Serve(ctx, log, ln, d.Handler(), process.ServerOptions(cfg.Server, redisconn.Checks(rdb)...))
}
