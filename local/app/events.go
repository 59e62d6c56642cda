package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/llm-proxy/llm-proxy/events"
	"github.com/llm-proxy/llm-proxy/events/eventsconfig"
	"github.com/llm-proxy/llm-proxy/functions/dispatcher"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/process"
)

// startEvents builds the event path of `llm-proxy serve` and returns the
// emitter that the proxy (request events) and the management service
// (change events) publish to, and stop, which drains it: the emitter into
// the broker, then the broker into the dispatchers, then the dispatchers'
// backends close.
//
// With the default in-process bus, an in-process broker hands every event to
// the dispatchers by function call (dispatcher.DeliverBatch as an in-process
// Trigger): the same Trigger filtering, batches and retries with backoff as
// a Knative Broker delivering to the dispatcher functions, and the same
// dispatchers (dedup on source+id, backend acknowledgement), without
// encoding the events to CloudEvents JSON and decoding them again over a
// loopback connection. The HTTP form of that path is what the deployables
// run (K_SINK to a broker, the dispatcher function's handler) and is tested
// there.
//
// FILE_EVENT_LOG adds a file dispatcher that receives every event (request
// events and management changes); DISPATCHER_SERVICE other than file
// (lunary, helicone, webhook) adds that backend, for request events, as a
// second dispatcher.
func startEvents(cfg config.Config, rdb redis.UniversalClient, reg prometheus.Registerer, log *slog.Logger) (em *events.Emitter, stop func(), err error) {
	var stops []func(ctx context.Context) error // run newest first
	stop = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			process.Close(log, "event path", stops[i])
		}
	}
	// emitter keeps what pub does not take in DATA_DIR/outbox.
	emitter := func(pub events.Publisher) (*events.Emitter, func(), error) {
		outbox, err := eventsconfig.NewServeOutbox(cfg, log)
		if err != nil {
			stop()
			return nil, nil, err
		}
		em := eventsconfig.NewEmitter(cfg, "serve", pub, outbox, reg, log)
		stops = append(stops, em.Close)
		return em, stop, nil
	}
	if cfg.Events.Bus != "in-process" {
		pub, err := eventsconfig.NewPublisher(cfg.Events, eventsconfig.PublisherDeps{Redis: rdb})
		if err != nil {
			return nil, nil, err
		}
		return emitter(pub)
	}

	var triggers []events.Trigger
	addDispatcher := func(name string, ev config.Events, filter map[string]string) error {
		disp, err := dispatcher.FromConfig(ev, rdb, cfg.Redis.KeyPrefix, log, reg)
		if err != nil {
			return fmt.Errorf("%s dispatcher: %w", name, err)
		}
		triggers = append(triggers, events.Trigger{Name: name, Filter: filter, Deliver: disp.DeliverBatch})
		if c, ok := disp.Backend().(io.Closer); ok {
			stops = append(stops, func(context.Context) error { return c.Close() })
		}
		return nil
	}
	if cfg.Events.FileEventLog != "" {
		// The file log gets every event: request events and management changes.
		file := cfg.Events
		file.DispatcherService, file.DispatcherEndpoint = dispatcher.ServiceFile, cfg.Events.FileEventLog
		if err := addDispatcher("file", file, nil); err != nil {
			stop()
			return nil, nil, err
		}
	}
	if cfg.Events.DispatcherService != dispatcher.ServiceFile {
		// LLM observability backends get request events only.
		if err := addDispatcher(cfg.Events.DispatcherService, cfg.Events, map[string]string{"type": events.TypeRequestCompleted}); err != nil {
			stop()
			return nil, nil, err
		}
	}
	if len(triggers) == 0 {
		log.Info("no event dispatcher configured (set FILE_EVENT_LOG or DISPATCHER_SERVICE): request events are not delivered")
		em := eventsconfig.NewEmitter(cfg, "serve", events.Discard, nil, reg, log)
		stops = append(stops, em.Close)
		return em, stop, nil
	}
	broker := events.NewBroker(events.BrokerOptions{Registerer: reg}, log)
	for _, t := range triggers {
		broker.Subscribe(t)
	}
	stops = append(stops, broker.Close)
	return emitter(broker)
}
