package events

import (
	"errors"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/llm-proxy/llm-proxy/shared/config"
)

// PublisherDeps holds what NewPublisher may need for the configured bus.
type PublisherDeps struct {
	Redis      redis.UniversalClient // LLM_PROXY_EVENT_BUS=redis-streams
	Broker     *Broker               // LLM_PROXY_EVENT_BUS=in-process
	HTTPClient *http.Client          // LLM_PROXY_EVENT_BUS=http (nil: default)
}

// NewPublisher returns the publisher LLM_PROXY_EVENT_BUS selects.
func NewPublisher(cfg config.Events, deps PublisherDeps) (Publisher, error) {
	switch cfg.Bus {
	case "none":
		return Discard, nil
	case "in-process":
		if deps.Broker == nil {
			return nil, errors.New("LLM_PROXY_EVENT_BUS=in-process needs the in-process broker (llm-proxy serve)")
		}
		return deps.Broker, nil
	case "http":
		if cfg.Sink == "" {
			return nil, errors.New("LLM_PROXY_EVENT_BUS=http needs K_SINK")
		}
		return NewHTTPPublisher(cfg.Sink, deps.HTTPClient)
	case "redis-streams":
		if deps.Redis == nil {
			return nil, errors.New("LLM_PROXY_EVENT_BUS=redis-streams needs REDIS_ADDR")
		}
		return NewRedisStreamPublisher(deps.Redis, cfg.StreamKey, cfg.StreamMaxLen), nil
	}
	return nil, errors.New("unknown LLM_PROXY_EVENT_BUS " + cfg.Bus)
}

// EmitterOptionsFrom maps the configuration to EmitterOptions for function
// fn (its name is the default source: /llmproxy/functions/<fn>). Bodies
// follow OBSERVABILITY_CAPTURE_BODIES.
func EmitterOptionsFrom(cfg config.Config, fn string, reg prometheus.Registerer) EmitterOptions {
	return EmitterOptions{
		Source:        cfg.Events.SourceFor(fn),
		Bodies:        cfg.Proxy.CaptureBodies,
		BufferSize:    cfg.Events.BufferSize,
		BatchSize:     cfg.Events.BatchSize,
		FlushInterval: cfg.Events.FlushInterval,
		Retries:       cfg.Events.Retries,
		RetryBackoff:  cfg.Events.RetryBackoff,
		Registerer:    reg,
	}
}
