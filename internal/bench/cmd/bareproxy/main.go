// Command bareproxy is the benchmark's floor: an httputil.ReverseProxy that
// does nothing but forward to one upstream (no auth, no limits, no cache,
// no events, no logging), with streaming flushed at once and an idle
// connection pool sized like llm-proxy's default so that the comparison
// measures features, not pool sizing. It prints "listening http://<addr>".
// Its only addition to a textbook ReverseProxy is the workaround for
// golang/go#40747 (streamed answers cut when the upstream answers before
// the transport finished checking the request body's length), which would
// otherwise make the floor fail about one stream in a thousand.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bareproxy:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:0", "listen address (loopback)")
	target := flag.String("upstream", "", "upstream base URL (required)")
	idle := flag.Int("max-idle-conns-per-host", 512, "idle upstream connections kept (llm-proxy's default UPSTREAM_MAX_IDLE_CONNS_PER_HOST)")
	flag.Parse()
	u, err := url.Parse(*target)
	if err != nil || u.Host == "" {
		return fmt.Errorf("-upstream: want an absolute URL, got %q", *target)
	}
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        2 * *idle,
		MaxIdleConnsPerHost: *idle,
		IdleConnTimeout:     90 * time.Second,
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Host = u.Host
			if n := r.In.ContentLength; n > 0 {
				// golang/go#40747: after sending Content-Length bytes the
				// transport reads once more to check the length; if the
				// upstream has already answered, the server has closed the
				// inbound body, that read fails and the transport cuts the
				// upstream connection mid-answer. Stop at the declared length.
				r.Out.Body = struct {
					io.Reader
					io.Closer
				}{io.LimitReader(r.In.Body, n), r.In.Body}
			}
		},
		Transport: tr, // FlushInterval left at its default: SSE is flushed at once anyway
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("listening http://%s\n", ln.Addr())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
