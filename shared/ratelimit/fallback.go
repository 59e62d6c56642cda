package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

// Policy says what happens when the shared limiter (Redis) is unreachable.
type Policy string

// Failure policies (RATE_LIMIT_FAILURE_POLICY).
const (
	// FailClosed refuses the request: the ErrUnavailable error propagates
	// and the proxy answers 503.
	FailClosed Policy = "fail-closed"
	// FailOpen lets the local, per-process limiter decide.
	FailOpen Policy = "fail-open"
)

// ParsePolicy parses a policy name.
func ParsePolicy(s string) (Policy, error) {
	switch p := Policy(s); p {
	case FailClosed, FailOpen:
		return p, nil
	}
	return "", fmt.Errorf("rate limit failure policy %q: must be %s or %s", s, FailClosed, FailOpen)
}

// Fallback applies a failure Policy around a primary limiter. After a
// failure the primary is skipped for Cooldown (so an outage does not add a
// Redis timeout to every request), then tried again.
type Fallback struct {
	primary  Limiter
	fallback Limiter
	policy   Policy
	log      *slog.Logger
	metrics  *Metrics
	// Cooldown is how long the primary is bypassed after a failure (default
	// 1s; set before use).
	Cooldown time.Duration

	mu         sync.Mutex
	downUntil  time.Time
	lastLog    time.Time
	suppressed int
}

// logEvery bounds how often a failing backend is logged.
const logEvery = 10 * time.Second

// WithFallback wraps primary with policy. fallback decides under FailOpen
// (nil: a fresh NewMemory). log and metrics may be nil.
func WithFallback(primary, fallback Limiter, policy Policy, log *slog.Logger, metrics *Metrics) *Fallback {
	if fallback == nil {
		fallback = NewMemory(MemoryOptions{})
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Fallback{primary: primary, fallback: fallback, policy: policy, log: log, metrics: metrics, Cooldown: time.Second}
}

// Admit asks the primary; when it is unavailable, applies the policy. A
// request no limit applies to is admitted without either: it never waits
// on or fails because of the primary, even during its cooldown.
func (f *Fallback) Admit(ctx context.Context, r Request) (Decision, error) {
	if !limited(r) {
		d := unlimited()
		f.metrics.observe(d, nil)
		return d, nil
	}
	var err error
	if f.primaryUp() {
		var d Decision
		d, err = f.primary.Admit(ctx, r)
		if err == nil || !errors.Is(err, llmproxy.ErrUnavailable) {
			f.metrics.observe(d, err)
			return d, err
		}
		f.markDown()
	} else {
		err = llmproxy.E(llmproxy.ErrUnavailable, llmproxy.CodeUnavailable, "rate limiter unavailable")
	}
	outcome := "rejected"
	if f.policy == FailOpen {
		outcome = "fallback"
	}
	if f.metrics != nil {
		f.metrics.BackendFailures.WithLabelValues(string(f.policy), outcome).Inc()
	}
	f.logFailure(err, outcome)
	if f.policy != FailOpen {
		f.metrics.observe(Decision{}, err)
		return Decision{}, err
	}
	d, ferr := f.fallback.Admit(ctx, r)
	f.metrics.observe(d, ferr)
	return d, ferr
}

func (f *Fallback) primaryUp() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !time.Now().Before(f.downUntil)
}

func (f *Fallback) markDown() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.downUntil = time.Now().Add(f.Cooldown)
}

// logFailure logs at most once per logEvery, with the number of failures
// not logged since.
func (f *Fallback) logFailure(err error, outcome string) {
	f.mu.Lock()
	now := time.Now()
	if now.Sub(f.lastLog) < logEvery {
		f.suppressed++
		f.mu.Unlock()
		return
	}
	n := f.suppressed
	f.lastLog, f.suppressed = now, 0
	f.mu.Unlock()
	f.log.Warn("rate limiter unavailable", "policy", string(f.policy), "outcome", outcome,
		"suppressed", n, "error", err.Error())
}

// Instrumented counts the decisions of l in m (use it when there is no
// Fallback, e.g. the in-memory limiter of llm-proxy serve).
func Instrumented(l Limiter, m *Metrics) Limiter { return instrumented{l, m} }

type instrumented struct {
	l Limiter
	m *Metrics
}

func (i instrumented) Admit(ctx context.Context, r Request) (Decision, error) {
	d, err := i.l.Admit(ctx, r)
	i.m.observe(d, err)
	return d, err
}
