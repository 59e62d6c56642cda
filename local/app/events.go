package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/llm-proxy/llm-proxy/events"
	"github.com/llm-proxy/llm-proxy/functions/dispatcher"
	"github.com/llm-proxy/llm-proxy/shared/bootstrap"
)

// mountEvents builds the event path of `llm-proxy serve` and returns the
// emitter that the proxy (request events) and the management service (change
// events) publish to.
//
// With the default in-process bus, an in-process broker delivers every event
// over real HTTP (CloudEvents batches, Trigger-like filtering, retries)
// to dispatcher handlers — exactly as a Knative Broker delivers to the
// dispatcher functions. The dispatchers listen on their own loopback-only
// listener, so they are not reachable from outside and they outlive the
// public server during shutdown: the emitter drains into the broker, the
// broker into the dispatchers, and only then does their listener close.
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

	mux := http.NewServeMux()
	var triggers []events.Trigger
	addDispatcher := func(name, fileOverride string, filter map[string]string) error {
		disp, err := dispatcher.FromConfig(cfg, d.RedisClient(), fileOverride, d.Log, d.Registry)
		if err != nil {
			return fmt.Errorf("%s dispatcher: %w", name, err)
		}
		mux.Handle("/"+name, disp.Handler())
		triggers = append(triggers, events.Trigger{Name: name, Filter: filter, Batch: true})
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

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("dispatcher listener: %w", err)
	}
	srv := &http.Server{Handler: mux}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.Log.Error("dispatcher listener stopped", "error", err)
		}
	}()
	d.OnClose(func(ctx context.Context) { _ = srv.Shutdown(ctx) })

	broker := events.NewBroker(events.BrokerOptions{Registerer: d.Registry}, d.Log)
	for _, t := range triggers {
		t.Subscriber = "http://" + ln.Addr().String() + "/" + t.Name
		broker.Subscribe(t)
	}
	d.OnClose(func(ctx context.Context) {
		if err := broker.Close(ctx); err != nil {
			d.Log.Error("drain event broker", "error", err)
		}
	})
	return d.Emitter("serve", broker)
}
