// Command mockupstream serves the benchmark's mock OpenAI upstream on a
// loopback address and prints "listening http://<addr>" once it accepts
// connections. It stops on SIGINT/SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/llm-proxy/llm-proxy/internal/bench/upstream"
	"github.com/llm-proxy/llm-proxy/internal/mockopenai"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "mockupstream:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:0", "listen address (loopback)")
	key := flag.String("key", "", "bearer key the upstream requires (empty: any)")
	chunks := flag.Int("chunks", 50, "content chunks per streamed answer")
	delay := flag.Duration("delay", 0, "pause before every streamed chunk")
	flag.Parse()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	if ip := ln.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
		_ = ln.Close()
		return fmt.Errorf("refusing to listen on non-loopback %s", ln.Addr())
	}
	s := upstream.New(mockopenai.Options{APIKey: *key, Chunks: *chunks, ChunkDelay: *delay})
	srv := &http.Server{Handler: s, ConnState: s.ConnState, ReadHeaderTimeout: 10 * time.Second}
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
