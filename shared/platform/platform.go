// Package platform adds what functions-framework-go lacks to a deployable
// function: health and readiness endpoints (/_/health and /_/ready for
// OpenFaaS, /healthz, /health, /live and /ready), counting of in-flight
// requests, and a drain on SIGTERM that lets in-flight requests — streams
// included — finish before the process exits.
//
// The function itself stays a plain http.Handler or CloudEvent receiver
// (DESIGN.md); only the mains in functions/<fn>/cmd use this package.
package platform

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"
	"github.com/GoogleCloudPlatform/functions-framework-go/functions"
	cloudevents "github.com/cloudevents/sdk-go/v2"

	"github.com/llm-proxy/llm-proxy/shared/buildinfo"
	"github.com/llm-proxy/llm-proxy/shared/logging"
	"github.com/llm-proxy/llm-proxy/shared/web"
)

// Runtime tracks one function process's in-flight work and lifecycle.
type Runtime struct {
	name     string
	log      *slog.Logger
	grace    time.Duration
	checks   []web.Check
	inflight sync.WaitGroup
	active   atomic.Int64
	draining atomic.Bool
	mu       sync.Mutex
	onDrain  []func(ctx context.Context)
	exit     func(code int)
}

// New returns a Runtime for the function name. grace bounds the drain;
// checks are the readiness dependencies (database, Redis).
func New(name string, log *slog.Logger, grace time.Duration, checks ...web.Check) *Runtime {
	return &Runtime{name: name, log: log, grace: grace, checks: checks, exit: os.Exit}
}

// OnDrain registers f to run after in-flight requests finished (e.g. flush
// event queues and usage counters). Hooks run in registration order.
func (r *Runtime) OnDrain(f func(ctx context.Context)) {
	r.mu.Lock()
	r.onDrain = append(r.onDrain, f)
	r.mu.Unlock()
}

func (r *Runtime) begin() func() {
	r.inflight.Add(1)
	r.active.Add(1)
	return func() { r.active.Add(-1); r.inflight.Done() }
}

// Handler serves the health endpoints and passes everything else to h,
// counting it as in flight.
func (r *Runtime) Handler(h http.Handler) http.Handler {
	health := web.Health(buildinfo.Version(), 2*time.Second, r.readyChecks()...)
	mux := http.NewServeMux()
	for _, p := range []string{"/_/health", "/healthz", "/health", "/live"} {
		mux.Handle("GET "+p, rewrite(health, "/health"))
	}
	for _, p := range []string{"/_/ready", "/ready"} {
		mux.Handle("GET "+p, rewrite(health, "/ready"))
	}
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		defer r.begin()()
		h.ServeHTTP(w, req)
	}))
	return mux
}

// readyChecks adds "not draining" to the configured checks, so a draining
// instance leaves the load balancer's rotation.
func (r *Runtime) readyChecks() []web.Check {
	return append([]web.Check{{Name: "lifecycle", Check: func(context.Context) error {
		if r.draining.Load() {
			return errors.New("draining")
		}
		return nil
	}}}, r.checks...)
}

func rewrite(h http.Handler, path string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		req2 := req.Clone(req.Context())
		req2.URL.Path = path
		h.ServeHTTP(w, req2)
	})
}

// TrackEvent wraps a CloudEvent receiver so its deliveries count as in
// flight.
func (r *Runtime) TrackEvent(fn func(context.Context, cloudevents.Event) error) func(context.Context, cloudevents.Event) error {
	return func(ctx context.Context, e cloudevents.Event) error {
		defer r.begin()()
		return fn(ctx, e)
	}
}

// Drain marks the runtime as draining (readiness fails), waits until no
// request is in flight or grace has passed, then runs the drain hooks.
func (r *Runtime) Drain() {
	r.draining.Store(true)
	r.log.Info("draining", "in_flight", r.active.Load(), "grace", r.grace)
	done := make(chan struct{})
	go func() { r.inflight.Wait(); close(done) }()
	ctx, cancel := context.WithTimeout(context.Background(), r.grace)
	defer cancel()
	select {
	case <-done:
	case <-ctx.Done():
		r.log.Warn("grace period over with requests in flight", "in_flight", r.active.Load())
	}
	hookCtx, hookCancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer hookCancel()
	r.mu.Lock()
	hooks := append([]func(context.Context){}, r.onDrain...)
	r.mu.Unlock()
	for _, f := range hooks {
		f(hookCtx)
	}
}

// drainOnSignal drains and exits on SIGTERM or SIGINT.
func (r *Runtime) drainOnSignal() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	go func() {
		<-sig
		r.Drain()
		r.log.Info("drained, exiting")
		logging.Flush(r.log)
		r.exit(0)
	}()
}

// ServeHTTPFunction registers h (with health endpoints and tracking) as the
// functions-framework HTTP function named after the runtime and serves it on
// port until SIGTERM drains it. FUNCTION_TARGET (set by the image) selects it
// and serves it at every path.
func (r *Runtime) ServeHTTPFunction(port string, h http.Handler) error {
	if os.Getenv("FUNCTION_TARGET") == "" {
		_ = os.Setenv("FUNCTION_TARGET", r.name) // serve every path, not only /<name>
	}
	functions.HTTP(r.name, r.Handler(h).ServeHTTP)
	r.drainOnSignal()
	r.log.Info("listening", "port", port, "version", buildinfo.Version())
	return funcframework.Start(port)
}

// ServeCloudEventFunction registers fn as a functions-framework CloudEvent
// function at "/" beside the health endpoints, and serves them on port until
// SIGTERM drains it. The framework serves a single target at every path when
// FUNCTION_TARGET is set, which would hide the health endpoints; so this mode
// registers by path and clears FUNCTION_TARGET.
func (r *Runtime) ServeCloudEventFunction(ctx context.Context, port string, fn func(context.Context, cloudevents.Event) error) error {
	_ = os.Unsetenv("FUNCTION_TARGET")
	if err := funcframework.RegisterCloudEventFunctionContext(ctx, "/", r.TrackEvent(fn)); err != nil {
		return err
	}
	health := r.Handler(http.NotFoundHandler())
	for _, p := range []string{"/_/health", "/_/ready", "/healthz", "/health", "/live", "/ready"} {
		if err := funcframework.RegisterHTTPFunctionContext(ctx, p, health.ServeHTTP); err != nil {
			return err
		}
	}
	r.drainOnSignal()
	r.log.Info("listening", "port", port, "version", buildinfo.Version())
	return funcframework.Start(port)
}
