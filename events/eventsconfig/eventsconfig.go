// Package eventsconfig maps the configuration (LLM_PROXY_EVENT_BUS, K_SINK,
// EVENT_*, OBSERVABILITY_*) to the events package's publishers and emitter
// options. It exists so that package events, the CloudEvents contract,
// depends on no configuration; only the mains import it.
package eventsconfig

import (
	"errors"
	"log/slog"
	"net/http"

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
	if cfg.Bus == "in-process" {
		cfg.Bus = "none"
		if cfg.Sink != "" {
			cfg.Bus = "http"
		}
	}
	return NewPublisher(cfg, PublisherDeps{Redis: rdb})
}

// NewEmitter returns the event emitter of function fn (its name is the
// default source: /llmproxy/functions/<fn>) publishing to pub, with the
// EVENT_* queue settings; bodies follow OBSERVABILITY_CAPTURE_BODIES. Close
// drains it.
func NewEmitter(cfg config.Config, fn string, pub events.Publisher, reg prometheus.Registerer, log *slog.Logger) *events.Emitter {
	return events.NewEmitter(pub, events.EmitterOptions{
		Source:        cfg.Events.SourceFor(fn),
		Bodies:        cfg.Proxy.CaptureBodies,
		BufferSize:    cfg.Events.BufferSize,
		BatchSize:     cfg.Events.BatchSize,
		FlushInterval: cfg.Events.FlushInterval,
		Retries:       cfg.Events.Retries,
		RetryBackoff:  cfg.Events.RetryBackoff,
		Registerer:    reg,
	}, log)
}
