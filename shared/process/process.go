// Package process runs one llm-proxy process, a deployable function or
// `llm-proxy serve`: it reads the configuration, builds the logger, cancels
// a context on SIGTERM or SIGINT, and serves HTTP with health and readiness
// endpoints, draining when that context ends. It imports no domain service:
// the mains compose the services and hand this package a handler.
//
// The functions keep functions-framework-go's model (one plain handler or
// CloudEvent receiver per image, FUNCTION_TARGET naming it) but are served
// here with net/http: funcframework.Start has no header, idle or body
// timeouts, and on Knative it writes two empty lines to stdout and stderr
// after every request.
package process

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/llm-proxy/llm-proxy/shared/buildinfo"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/logging"
	"github.com/llm-proxy/llm-proxy/shared/web"
)

// Main is the body of every function's main: it checks FUNCTION_TARGET,
// reads and validates the configuration, builds the logger and runs run with
// a context that SIGTERM or SIGINT cancels. It exits non-zero with one clear
// line when any of that fails.
func Main(name string, run func(ctx context.Context, cfg config.Config, log *slog.Logger) error) {
	// FUNCTION_TARGET (set by the image and the manifests) names the
	// function; a mismatch is a deployment mistake, stopped before anything
	// is opened.
	if t := os.Getenv("FUNCTION_TARGET"); t != "" && t != name {
		fmt.Fprintf(os.Stderr, "%s: FUNCTION_TARGET=%s, but this image is the %s function\n", name, t, name)
		os.Exit(1)
	}
	ctx, stop := SignalContext(context.Background())
	defer stop()
	cfg, err := config.Load(ctx, envconfig.OsLookuper())
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
	log := logging.New(cfg.Log, os.Stderr).With("function", name)
	if err := run(ctx, cfg, log); err != nil {
		log.Error("function stopped", "error", err)
		logging.Flush(log)
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
	logging.Flush(log)
}

// SignalContext returns a context cancelled by SIGTERM or SIGINT.
func SignalContext(parent context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(parent, syscall.SIGTERM, os.Interrupt)
}

// FunctionAddr is the address a deployable function listens on:
// LISTEN_ADDR when it is set, else :$PORT, else :8080 (the Knative and
// OpenFaaS default).
func FunctionAddr(s config.Server) string {
	if s.ListenAddr != "" {
		return s.ListenAddr
	}
	if s.Port != "" {
		return ":" + s.Port
	}
	return ":8080"
}

// Options configure Serve.
type Options struct {
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	// ShutdownGrace bounds how long in-flight requests (streams included)
	// may run once the context ended.
	ShutdownGrace time.Duration
	// Checks are the readiness dependencies (database, Redis).
	Checks []web.Check
}

// ServerOptions are Options from SHUTDOWN_GRACE_PERIOD,
// READ_HEADER_TIMEOUT and IDLE_TIMEOUT, with the readiness checks.
func ServerOptions(s config.Server, checks ...web.Check) Options {
	return Options{ReadHeaderTimeout: s.ReadHeaderTimeout, IdleTimeout: s.IdleTimeout, ShutdownGrace: s.ShutdownGrace, Checks: checks}
}

// Liveness and readiness paths: /_/health and /_/ready are OpenFaaS's,
// /healthz Kubernetes' habit, the others the original's.
var (
	LivePaths  = []string{"/_/health", "/healthz", "/health", "/live"}
	ReadyPaths = []string{"/_/ready", "/ready"}
)

// Serve serves h on ln, with the health endpoints in front, until ctx ends.
// Then it drains: readiness answers 503, the listener closes, in-flight
// requests (streams included) may finish within ShutdownGrace, and the
// connections left are closed. It returns when the drain is over; the
// caller then closes what the handler used (event queues, counters,
// clients), in reverse order of creation. There is deliberately no write
// timeout: it would cut long streams.
func Serve(ctx context.Context, log *slog.Logger, ln net.Listener, h http.Handler, o Options) error {
	var draining atomic.Bool
	srv := &http.Server{
		Handler:           withHealth(h, &draining, o.Checks),
		ReadHeaderTimeout: o.ReadHeaderTimeout,
		IdleTimeout:       o.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String(), "version", buildinfo.Version())
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	draining.Store(true)
	log.Info("draining in-flight requests", "grace", o.ShutdownGrace)
	sctx, cancel := context.WithTimeout(context.Background(), o.ShutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); errors.Is(err, context.DeadlineExceeded) {
		log.Warn("grace period over with requests in flight: closing their connections")
		_ = srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	log.Info("drained")
	return nil
}

// withHealth answers the liveness and readiness paths and passes every
// other request to h. A draining process is not ready, so it leaves the
// load balancer's rotation.
func withHealth(h http.Handler, draining *atomic.Bool, checks []web.Check) http.Handler {
	lifecycle := web.Check{Name: "lifecycle", Check: func(context.Context) error {
		if draining.Load() {
			return errors.New("draining")
		}
		return nil
	}}
	health := web.Health(buildinfo.Version(), 2*time.Second, append([]web.Check{lifecycle}, checks...)...)
	mux := http.NewServeMux()
	for _, p := range LivePaths {
		mux.Handle("GET "+p, rewrite(health, "/health"))
	}
	for _, p := range ReadyPaths {
		mux.Handle("GET "+p, rewrite(health, "/ready"))
	}
	mux.Handle("/", h)
	return mux
}

func rewrite(h http.Handler, path string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r2 := r.Clone(r.Context())
		r2.URL.Path = path
		h.ServeHTTP(w, r2)
	})
}

// CloseTimeout bounds each release after the server drained.
const CloseTimeout = 10 * time.Second

// Close runs close with a context bounded by CloseTimeout and logs its
// error: the shape of every deferred release in the mains (drain an event
// queue, flush counters, give back leases).
func Close(log *slog.Logger, what string, close func(ctx context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), CloseTimeout)
	defer cancel()
	if err := close(ctx); err != nil {
		log.Error("close "+what, "error", err)
	}
}
