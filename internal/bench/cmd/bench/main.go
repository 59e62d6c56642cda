// Command bench is `make bench`'s end-to-end comparison: it builds and
// starts a mock OpenAI upstream, a bare reverse proxy, `llm-proxy serve` and
// the standalone proxy function, loads each with the same scenarios,
// interleaved over several rounds, and prints medians and ratios. The
// report is also written to <out>/latest.json and <out>/latest.md.
//
//	go run ./internal/bench/cmd/bench                 # full run (a few minutes)
//	go run ./internal/bench/cmd/bench -quick          # smoke run
//	go run ./internal/bench/cmd/bench -targets bare,serve -scenarios chat,rate
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/llm-proxy/llm-proxy/internal/bench/harness"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func list(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

func run() error {
	var o harness.Options
	flag.BoolVar(&o.Quick, "quick", false, "short smoke run (1 round, short runs, 100 slow streams)")
	flag.IntVar(&o.Rounds, "rounds", 0, "interleaved rounds (default 3, quick 1)")
	scenarios := flag.String("scenarios", "", "comma-separated subset of: "+strings.Join(harness.AllScenarios, ","))
	targets := flag.String("targets", "", "comma-separated subset of: "+strings.Join(harness.AllTargets, ","))
	flag.DurationVar(&o.Duration, "duration", 0, "measured part of each load run (default 2s, quick 700ms)")
	flag.DurationVar(&o.Warmup, "warmup", 0, "warm-up before each measured run (default 2s, quick 200ms)")
	flag.IntVar(&o.Concurrency, "concurrency", 0, "closed-loop workers (default 32)")
	flag.Float64Var(&o.Rate, "rate", 0, "requests/s of the fixed-rate scenario (default 500)")
	flag.Float64Var(&o.StreamRate, "stream-rate", 0, "streams/s of the stream scenario (default 100)")
	flag.IntVar(&o.Streams, "streams", 0, "least streams per measured stream run: it lasts -duration or -streams/-stream-rate, whichever is longer (default 500, quick 0)")
	flag.IntVar(&o.StreamChunks, "chunks", 0, "content chunks per streamed answer (default 50)")
	flag.IntVar(&o.SlowStreams, "slow-streams", 0, "concurrent slow streams (default 1000, quick 100)")
	flag.DurationVar(&o.SlowDelay, "slow-delay", 0, "upstream pause before each chunk of a slow stream (default 100ms, quick 20ms)")
	flag.StringVar(&o.PostgresURL, "postgres", envOr("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"), "PostgreSQL server on which a fresh database is created (and dropped) for the function target")
	flag.StringVar(&o.RedisAddr, "redis", envOr("TEST_REDIS_ADDR", "127.0.0.1:6379"), "Redis address for the function target (keys under a unique prefix, deleted afterwards)")
	flag.StringVar(&o.TargetLogLevel, "log-level", "info", "LOG_LEVEL of the llm-proxy processes (info: one access log line per request, as in production)")
	flag.Func("env", "KEY=VALUE added to the environment of serve and the function (repeatable; e.g. -env FILE_EVENT_LOG= to price the file dispatcher)", func(v string) error {
		if !strings.Contains(v, "=") {
			return fmt.Errorf("want KEY=VALUE, got %q", v)
		}
		o.TargetEnv = append(o.TargetEnv, v)
		return nil
	})
	flag.BoolVar(&o.KeepTemp, "keep", false, "keep the temporary directory (binaries, process logs)")
	flag.BoolVar(&o.GCTrace, "gctrace", false, "run the proxies with GODEBUG=gctrace=1 (GC cycles in their logs; with -keep)")
	flag.StringVar(&o.ProfileDir, "perf", "", "directory for Linux perf CPU profiles of the targets (the upstream for (a)) during each measured run (perf report -i <file>)")
	out := flag.String("out", "bench-results", "directory for latest.json and latest.md")
	timeout := flag.Duration("timeout", 15*time.Minute, "bound on the whole run")
	flag.Parse()
	o.Scenarios, o.Targets = list(*scenarios), list(*targets)
	o.Log = os.Stderr
	if o.ProfileDir != "" {
		if err := os.MkdirAll(o.ProfileDir, 0o755); err != nil {
			return err
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	rep, err := harness.Run(ctx, o)
	if err != nil {
		return err
	}
	md := rep.Markdown()
	fmt.Print(md)
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(*out, "latest.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(*out, "latest.md"), []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s and %s\n", filepath.Join(*out, "latest.json"), filepath.Join(*out, "latest.md"))
	return nil
}
