package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// ServerOptions configure Serve.
type ServerOptions struct {
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	// ShutdownGrace bounds how long in-flight requests may run after ctx is
	// cancelled.
	ShutdownGrace time.Duration
	// OnShutdown runs after the listener closed and in-flight requests
	// drained (or the grace period ran out), e.g. to flush event queues.
	OnShutdown func(ctx context.Context)
}

// Serve serves h on ln until ctx is cancelled, then stops accepting, lets
// in-flight requests (streams included) finish within the grace period, and
// returns. There is deliberately no write timeout: it would cut long streams.
func Serve(ctx context.Context, log *slog.Logger, ln net.Listener, h http.Handler, o ServerOptions) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: o.ReadHeaderTimeout,
		IdleTimeout:       o.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: draining in-flight requests", "grace", o.ShutdownGrace)
	sctx, cancel := context.WithTimeout(context.Background(), o.ShutdownGrace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		log.Warn("grace period over: closing remaining connections")
		_ = srv.Close()
	}
	if o.OnShutdown != nil {
		o.OnShutdown(sctx)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
