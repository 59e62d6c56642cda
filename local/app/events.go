package app

import (
	"context"
	"fmt"
	"io"

	"github.com/llm-proxy/llm-proxy/events"
	"github.com/llm-proxy/llm-proxy/functions/dispatcher"
	"github.com/llm-proxy/llm-proxy/shared/bootstrap"
)

// mountEvents builds the event path of `llm-proxy serve` and returns the
// emitter that the proxy (request events) and the management service (change
// events) publish to.
//
// With the default in-process bus, an in-process broker hands every event to
// the dispatchers by function call (dispatcher.DeliverBatch as an in-process
// Trigger): the same Trigger filtering, batches and retries with backoff as
// a Knative Broker delivering to the dispatcher functions, and the same
// dispatchers (dedup on source+id, backend acknowledgement), without
// encoding the events to CloudEvents JSON and decoding them again over a
// loopback connection. The HTTP form of that path is what the deployables
// run (K_SINK to a broker, the dispatcher function's handler) and is tested
// there. During shutdown the emitter drains into the broker, then the broker
// finishes its deliveries into the dispatchers.
//
// FILE_EVENT_LOG adds a file dispatcher that receives every event (request
// events and management changes); DISPATCHER_SERVICE other than file
// (lunary, helicone, webhook) adds that backend, for request events, as a
// second dispatcher.
func mountEvents(ctx context.Context, d *bootstrap.Deps) (*events.Emitter, error) {
	cfg := d.Config
	if cfg.Events.Bus != "in-process" {
		pub, err := events.NewPublisher(cfg.Events, events.PublisherDeps{Redis: d.RedisClient()})
		if err != nil {
			return nil, err
		}
		return d.Emitter("serve", pub)
	}

	var triggers []events.Trigger
	addDispatcher := func(name, fileOverride string, filter map[string]string) error {
		disp, err := dispatcher.FromConfig(cfg, d.RedisClient(), fileOverride, d.Log, d.Registry)
		if err != nil {
			return fmt.Errorf("%s dispatcher: %w", name, err)
		}
		triggers = append(triggers, events.Trigger{Name: name, Filter: filter, Deliver: disp.DeliverBatch})
		if c, ok := disp.Backend().(io.Closer); ok {
			// Registered before the broker's hook, so it runs after it.
			d.OnClose(func(context.Context) {
				if err := c.Close(); err != nil {
					d.Log.Error("close event dispatcher", "dispatcher", name, "error", err)
				}
			})
		}
		return nil
	}
	if cfg.Events.FileEventLog != "" {
		// The file log gets every event: request events and management changes.
		if err := addDispatcher("file", cfg.Events.FileEventLog, nil); err != nil {
			return nil, err
		}
	}
	if cfg.Events.DispatcherService != dispatcher.ServiceFile {
		// LLM observability backends get request events only.
		if err := addDispatcher(cfg.Events.DispatcherService, "", map[string]string{"type": events.TypeRequestCompleted}); err != nil {
			return nil, err
		}
	}
	if len(triggers) == 0 {
		d.Log.Info("no event dispatcher configured (set FILE_EVENT_LOG or DISPATCHER_SERVICE): request events are not delivered")
		return d.Emitter("serve", events.Discard)
	}

	broker := events.NewBroker(events.BrokerOptions{Registerer: d.Registry}, d.Log)
	for _, t := range triggers {
		broker.Subscribe(t)
	}
	// Registered before the emitter's hook, so it runs after it: the
	// emitter drains into the broker first.
	d.OnClose(func(ctx context.Context) {
		if err := broker.Close(ctx); err != nil {
			d.Log.Error("drain event broker", "error", err)
		}
	})
	return d.Emitter("serve", broker)
}
