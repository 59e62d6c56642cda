// Package eventsconfig maps the configuration (LLM_PROXY_EVENT_BUS, K_SINK,
// EVENT_*, OBSERVABILITY_*) to the events package's publishers and emitter
// options. It exists so that package events, the CloudEvents contract,
// depends on no configuration; only the mains import it.
package eventsconfig

import (
	"errors"
	"log/slog"
	"net/http"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/llm-proxy/llm-proxy/events"
	"github.com/llm-proxy/llm-proxy/shared/config"
)

// PublisherDeps holds what NewPublisher may need for the configured bus.
type PublisherDeps struct {
	Redis      redis.UniversalClient // LLM_PROXY_EVENT_BUS=redis-streams
	Broker     *events.Broker        // LLM_PROXY_EVENT_BUS=in-process
	HTTPClient *http.Client          // LLM_PROXY_EVENT_BUS=http (nil: default)
}

// NewPublisher returns the publisher LLM_PROXY_EVENT_BUS selects.
func NewPublisher(cfg config.Events, deps PublisherDeps) (events.Publisher, error) {
	switch cfg.Bus {
	case "none":
		return events.Discard, nil
	case "in-process":
		if deps.Broker == nil {
			return nil, errors.New("LLM_PROXY_EVENT_BUS=in-process needs the in-process broker (llm-proxy serve)")
		}
		return deps.Broker, nil
	case "http":
		if cfg.Sink == "" {
			return nil, errors.New("LLM_PROXY_EVENT_BUS=http needs K_SINK")
		}
		return events.NewHTTPPublisher(cfg.Sink, deps.HTTPClient)
	case "redis-streams":
		if deps.Redis == nil {
			return nil, errors.New("LLM_PROXY_EVENT_BUS=redis-streams needs REDIS_ADDR")
		}
		return events.NewRedisStreamPublisher(deps.Redis, cfg.StreamKey, cfg.StreamMaxLen), nil
	}
	return nil, errors.New("unknown LLM_PROXY_EVENT_BUS " + cfg.Bus)
}

// NewFunctionPublisher is NewPublisher for a deployable function, which has
// no in-process broker: the default bus (in-process) means http when K_SINK
// is set (a Knative SinkBinding, an OpenFaaS async URL) and none otherwise.
func NewFunctionPublisher(cfg config.Events, rdb redis.UniversalClient) (events.Publisher, error) {
	cfg.Bus = functionBus(cfg)
	return NewPublisher(cfg, PublisherDeps{Redis: rdb})
}

func functionBus(cfg config.Events) string {
	if cfg.Bus == "in-process" {
		if cfg.Sink != "" {
			return "http"
		}
		return "none"
	}
	return cfg.Bus
}

// OutboxDir is the directory of `llm-proxy serve`'s event outbox.
func OutboxDir(cfg config.Config) string { return filepath.Join(cfg.Server.DataDir, "outbox") }

// NewServeOutbox is the outbox of `llm-proxy serve`: files in
// DATA_DIR/outbox bounded by EVENT_OUTBOX_MAX_BYTES; nil (no outbox) when
// that is 0 or LLM_PROXY_EVENT_BUS=none.
func NewServeOutbox(cfg config.Config, log *slog.Logger) (events.Outbox, error) {
	if cfg.Events.OutboxMaxBytes == 0 || cfg.Events.Bus == "none" {
		return nil, nil
	}
	ob, err := events.OpenFileOutbox(OutboxDir(cfg), cfg.Events.OutboxMaxBytes, log)
	if err != nil {
		return nil, err
	}
	return ob, nil
}

// NewFunctionOutbox is the outbox of deployable function fn: the Redis
// stream <REDIS_KEY_PREFIX>{events}:outbox:<fn> that all its instances
// share (each function its own, as each may have its own K_SINK), or,
// without Redis, memory (logged: it does not survive a restart); nil when
// EVENT_OUTBOX_MAX_BYTES is 0 or the function publishes nowhere.
func NewFunctionOutbox(cfg config.Config, fn string, rdb redis.UniversalClient, log *slog.Logger) events.Outbox {
	if cfg.Events.OutboxMaxBytes == 0 || functionBus(cfg.Events) == "none" {
		return nil
	}
	if rdb == nil {
		log.Warn("REDIS_ADDR is not set: events the sink does not take are kept in memory until it is back, and lost if the process ends first")
		return events.NewMemoryOutbox(cfg.Events.OutboxMaxBytes, log)
	}
	return events.NewRedisOutbox(rdb, OutboxKey(cfg, fn), events.RedisOutboxOptions{MaxBytes: cfg.Events.OutboxMaxBytes}, log)
}

// OutboxKey is the Redis stream of function fn's outbox.
func OutboxKey(cfg config.Config, fn string) string {
	return cfg.Redis.KeyPrefix + "{events}:outbox:" + fn
}

// NewEmitter returns the event emitter of function fn (its name is the
// default source: /llmproxy/functions/<fn>) publishing to pub, keeping what
// pub does not take in outbox (nil: dropped), with the EVENT_* queue
// settings; bodies follow OBSERVABILITY_CAPTURE_BODIES. Close drains it and
// closes the outbox.
func NewEmitter(cfg config.Config, fn string, pub events.Publisher, outbox events.Outbox, reg prometheus.Registerer, log *slog.Logger) *events.Emitter {
	return events.NewEmitter(pub, events.EmitterOptions{
		Source:        cfg.Events.SourceFor(fn),
		Bodies:        cfg.Proxy.CaptureBodies,
		BufferSize:    cfg.Events.BufferSize,
		BatchSize:     cfg.Events.BatchSize,
		FlushInterval: cfg.Events.FlushInterval,
		Retries:       cfg.Events.Retries,
		RetryBackoff:  cfg.Events.RetryBackoff,
		Outbox:        outbox,
		Registerer:    reg,
	}, log)
}
