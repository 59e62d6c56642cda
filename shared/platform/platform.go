// Package platform serves a deployable function: its handler
// (functions-framework-go's model; the dispatcher's receives CloudEvents) on
// PORT with header and idle
// timeouts, health and readiness endpoints (/_/health and /_/ready for
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

	"github.com/llm-proxy/llm-proxy/shared/buildinfo"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/logging"
	"github.com/llm-proxy/llm-proxy/shared/web"
)

// Runtime tracks one function process's in-flight work and lifecycle.
type Runtime struct {
	name     string
	log      *slog.Logger
	server   config.Server // timeouts; ShutdownGrace bounds the drain
	checks   []web.Check
	inflight sync.WaitGroup
	active   atomic.Int64
	draining atomic.Bool
	mu       sync.Mutex
	onDrain  []func(ctx context.Context)
	exit     func(code int)
}

// New returns a Runtime for the function name, served with server's
// timeouts (SHUTDOWN_GRACE_PERIOD bounds the drain); checks are the
// readiness dependencies (database, Redis).
func New(name string, log *slog.Logger, server config.Server, checks ...web.Check) *Runtime {
	return &Runtime{name: name, log: log, server: server, checks: checks, exit: os.Exit}
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

// Drain marks the runtime as draining (readiness fails), waits until no
// request is in flight or grace has passed, then runs the drain hooks.
func (r *Runtime) Drain() {
	r.draining.Store(true)
	r.log.Info("draining", "in_flight", r.active.Load(), "grace", r.server.ShutdownGrace)
	done := make(chan struct{})
	go func() { r.inflight.Wait(); close(done) }()
	ctx, cancel := context.WithTimeout(context.Background(), r.server.ShutdownGrace)
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

// ServeHTTPFunction serves h (with health endpoints and tracking) at every
// path on port until SIGTERM drains it.
func (r *Runtime) ServeHTTPFunction(port string, h http.Handler) error {
	return r.serve(port, r.Handler(h))
}

// serve runs h on port with the configured header and idle timeouts.
//
// functions-framework-go's Start serves with http.ListenAndServe: no
// header timeout (a client can hold a connection open by sending headers
// slowly), READ_HEADER_TIMEOUT and IDLE_TIMEOUT ignored, and, on Knative
// (K_SERVICE set), two empty lines written to stdout and stderr after every
// request. The functions keep its model (a plain handler or CloudEvent
// receiver, one per image, FUNCTION_TARGET naming it: see Main) and are
// served here as plain handlers.
func (r *Runtime) serve(port string, h http.Handler) error {
	srv := &http.Server{
		Addr:              ":" + port,
		Handler:           h,
		ReadHeaderTimeout: r.server.ReadHeaderTimeout,
		IdleTimeout:       r.server.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(r.log.Handler(), slog.LevelWarn),
	}
	r.drainOnSignal()
	r.log.Info("listening", "port", port, "version", buildinfo.Version())
	return srv.ListenAndServe()
}
