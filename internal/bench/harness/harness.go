// Package harness runs the end-to-end benchmark behind `make bench`: it
// builds the mock upstream, the bare reverse proxy, `llm-proxy serve` and
// the standalone proxy function, starts them on loopback, and measures each
// scenario on each target, interleaved over several rounds (targets restart
// every round, and their order rotates). It reports medians over rounds and
// ratios to the upstream and to the bare proxy, as JSON and markdown.
package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/llm-proxy/llm-proxy/internal/bench/loadgen"
	"github.com/llm-proxy/llm-proxy/internal/bench/procstat"
	"github.com/llm-proxy/llm-proxy/shared/tokens"
)

// Options shape a benchmark run. Zero values take the defaults of a full
// run (or of a quick one when Quick is set).
type Options struct {
	Root      string   // module root; default: found from the working directory
	Rounds    int      // interleaved rounds (default 3; quick 1)
	Quick     bool     // a short smoke run
	Scenarios []string // subset of AllScenarios (default all)
	Targets   []string // subset of AllTargets (default all)

	Duration    time.Duration // measured part of each load scenario (default 2s; quick 700ms)
	Warmup      time.Duration // before each measured part (default 2s; quick 200ms)
	Concurrency int           // closed-loop workers (default 32)
	Rate        float64       // fixed-rate scenario, requests/s (default 500)
	StreamRate  float64       // stream scenario, streams/s (default 100)
	// Streams is the least number of streams a measured stream run opens
	// (default 500; quick 0): the run lasts Duration or Streams/StreamRate,
	// whichever is longer, so that its p99 is not the second-worst of 200.
	Streams      int
	StreamChunks int           // content chunks per streamed answer (default 50)
	SlowStreams  int           // concurrent slow streams (default 1000; quick 100)
	SlowDelay    time.Duration // upstream pause before each chunk of a slow stream (default 100ms; quick 20ms)
	SlowRamp     time.Duration // bound on opening all slow streams (default 4s; quick 900ms)

	PostgresURL    string // server to create the function's database on
	RedisAddr      string
	TargetLogLevel string // LOG_LEVEL of the llm-proxy processes (default info: access logs on)
	// TargetEnv are KEY=VALUE settings added last to the environment of the
	// llm-proxy processes (serve and the function): what a feature costs is
	// the difference between a run with and one without it.
	TargetEnv []string
	KeepTemp  bool // keep the temporary directory (binaries, logs, databases)
	// ProfileDir, when set, receives a Linux perf CPU profile (with call
	// graphs) of every target process (the upstream for (a)) during every
	// measured load run: perf-<target>-<scenario>-<round>.data.
	ProfileDir string
	// GCTrace runs the proxies (bare, serve, function) with
	// GODEBUG=gctrace=1: one line per GC cycle (heap before, after and
	// goal) in their process logs, to tell live heap from GC headroom in
	// the memory figures. It does not change the collector's behaviour;
	// use it with KeepTemp to read the logs.
	GCTrace bool

	Log io.Writer // progress (default io.Discard)
}

// streamRun is how long a measured stream run lasts: Duration, or long
// enough to open Streams streams at StreamRate.
func (o *Options) streamRun() time.Duration {
	return max(o.Duration, time.Duration(float64(o.Streams)/o.StreamRate*float64(time.Second)))
}

func (o *Options) defaults() error {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Root == "" {
		wd, err := os.Getwd()
		if err != nil {
			return err
		}
		if o.Root, err = moduleRoot(wd); err != nil {
			return err
		}
	}
	pick := func(full, quick time.Duration) time.Duration {
		if o.Quick {
			return quick
		}
		return full
	}
	set := func(v *time.Duration, full, quick time.Duration) {
		if *v <= 0 {
			*v = pick(full, quick)
		}
	}
	if o.Rounds <= 0 {
		o.Rounds = 3
		if o.Quick {
			o.Rounds = 1
		}
	}
	set(&o.Duration, 2*time.Second, 700*time.Millisecond)
	// 2s: a process leases a busy token's admissions only once it has seen a
	// whole second of them (shared/ratelimit/lease.go); steady state is what
	// a long-running gateway serves.
	set(&o.Warmup, 2*time.Second, 200*time.Millisecond)
	set(&o.SlowDelay, 100*time.Millisecond, 20*time.Millisecond)
	set(&o.SlowRamp, 4*time.Second, 900*time.Millisecond)
	if o.Concurrency <= 0 {
		o.Concurrency = 32
	}
	if o.Rate <= 0 {
		o.Rate = 500
	}
	if o.StreamRate <= 0 {
		o.StreamRate = 100
	}
	if o.Streams == 0 && !o.Quick {
		o.Streams = 500
	}
	if o.StreamChunks <= 0 {
		o.StreamChunks = 50
	}
	if o.SlowStreams <= 0 {
		o.SlowStreams = 1000
		if o.Quick {
			o.SlowStreams = 100
		}
	}
	if o.PostgresURL == "" {
		o.PostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	if o.RedisAddr == "" {
		o.RedisAddr = "127.0.0.1:6379"
	}
	if o.TargetLogLevel == "" {
		o.TargetLogLevel = "info"
	}
	if len(o.Scenarios) == 0 {
		o.Scenarios = AllScenarios
	}
	if len(o.Targets) == 0 {
		o.Targets = AllTargets
	}
	for _, s := range o.Scenarios {
		if !slices.Contains(AllScenarios, s) {
			return fmt.Errorf("unknown scenario %q (have %v)", s, AllScenarios)
		}
	}
	for _, t := range o.Targets {
		if !slices.Contains(AllTargets, t) {
			return fmt.Errorf("unknown target %q (have %v)", t, AllTargets)
		}
	}
	// Run in the canonical order whatever order the flags gave.
	o.Scenarios = ordered(AllScenarios, o.Scenarios)
	o.Targets = ordered(AllTargets, o.Targets)
	return nil
}

func ordered(all, subset []string) []string {
	var out []string
	for _, s := range all {
		if slices.Contains(subset, s) {
			out = append(out, s)
		}
	}
	return out
}

// Run performs the benchmark and returns its report.
func Run(ctx context.Context, o Options) (*Report, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	started := time.Now()
	dir, err := os.MkdirTemp("", "llmproxy-bench-")
	if err != nil {
		return nil, err
	}
	if o.KeepTemp {
		fmt.Fprintf(o.Log, "temporary directory (kept): %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	rep := &Report{Machine: describeMachine(), Options: o.summary(), Started: started.UTC(), Skipped: map[string]string{}}
	pkgs := []string{"./internal/bench/cmd/mockupstream", "./internal/bench/cmd/bareproxy"}
	bins, err := build(ctx, o.Root, dir, pkgs, o.Log)
	if err != nil {
		return nil, err
	}
	targets := slices.Clone(o.Targets)
	// The llm-proxy binaries may not build (work in progress): the targets
	// that need them are skipped with the reason, the others still run.
	needs := map[string][]string{Serve: {"llm-proxy=./local/cmd/llm-proxy"}, Function: {"llm-proxy=./local/cmd/llm-proxy", "proxy=./functions/proxy/cmd"}}
	for _, t := range []string{Serve, Function} {
		if !slices.Contains(targets, t) {
			continue
		}
		for _, pkg := range needs[t] {
			b, err := build(ctx, o.Root, dir, []string{pkg}, o.Log)
			if err != nil {
				rep.Skipped[t] = firstLines(err.Error(), 3)
				fmt.Fprintf(o.Log, "skip %s: %v\n", t, err)
				break
			}
			for k, v := range b {
				bins[k] = v
			}
		}
		if rep.Skipped[t] != "" {
			targets = slices.DeleteFunc(targets, func(s string) bool { return s == t })
		}
	}

	e := newEnv(o, dir, bins)
	if e.unknownToken, err = tokens.Generate(); err != nil {
		return nil, err
	}
	if err := e.startUpstream(ctx); err != nil {
		return nil, fmt.Errorf("mock upstream: %w", err)
	}
	defer e.upstream.stop(5 * time.Second)
	defer func() {
		if err := e.cleanup(context.WithoutCancel(ctx)); err != nil {
			fmt.Fprintln(o.Log, err)
		}
	}()

	for round := 1; round <= o.Rounds; round++ {
		if err := e.round(ctx, round, targets, rep); err != nil {
			return nil, err
		}
	}
	rep.Elapsed = time.Since(started).Round(time.Second).String()
	rep.finish(targets)
	return rep, nil
}

// round starts every target, runs every scenario on each (targets in an
// order rotated by round) and stops them.
func (e *env) round(ctx context.Context, round int, names []string, rep *Report) error {
	n := len(names)
	order := make([]*target, 0, n)
	for i := range n {
		order = append(order, e.newTarget(names[(i+round-1)%n]))
	}
	defer func() {
		for _, t := range order {
			t.stop()
		}
	}()
	clients := map[string]*http.Client{}
	for _, t := range order {
		if err := t.start(ctx); err != nil {
			return fmt.Errorf("round %d: start %s: %w", round, t.name, err)
		}
		clients[t.name] = loadgen.NewClient(max(e.o.Concurrency, e.o.SlowStreams) + 16)
	}
	defer func() {
		for _, c := range clients {
			c.CloseIdleConnections()
		}
	}()
	e.roundNo = round
	fmt.Fprintf(e.o.Log, "round %d/%d: %s\n", round, e.o.Rounds, orderNames(order))
	for _, sc := range e.o.Scenarios {
		for _, t := range order {
			if err := ctx.Err(); err != nil {
				return err
			}
			m, err := e.runScenario(ctx, sc, t, clients[t.name])
			if err != nil {
				if t.proc != nil && t.proc.exited() {
					err = errors.Join(err, fmt.Errorf("%s exited: %v\n%s", t.name, t.proc.err, t.proc.tail(20)))
				}
				return fmt.Errorf("round %d: %s on %s: %w", round, sc, t.name, err)
			}
			m.Round = round
			rep.Runs = append(rep.Runs, m)
			fmt.Fprintf(e.o.Log, "  %-16s %-9s %s\n", sc, t.name, m.brief())
		}
	}
	for _, t := range order {
		mem, err := procstat.Memory(t.pid(e))
		if err != nil {
			return err
		}
		rep.Runs = append(rep.Runs, Measurement{Scenario: scProcess, Target: t.name, Round: round, PeakRSSKiB: float64(mem.HWM >> 10)})
	}
	return nil
}

func orderNames(ts []*target) string {
	s := ""
	for i, t := range ts {
		if i > 0 {
			s += ", "
		}
		s += t.name
	}
	return s
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, " / ")
}
