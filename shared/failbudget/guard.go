package failbudget

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// Scopes of a budget (the scope label of the metrics, the scope of a log
// line).
const (
	ScopeClient = "client"
	ScopeGlobal = "global"
)

// Options configure a Guard.
type Options struct {
	// Surface names what the guard protects ("management_api", "admin_ui"):
	// the surface label of the metrics and part of the Redis keys.
	Surface string
	// PerClient failures per client IP and Global failures across all
	// clients (and instances, with Redis) are allowed within Window; further
	// failures are refused (429) until the window ends.
	PerClient, Global int
	Window            time.Duration
	// Redis shares the counts between instances (nil: this process only);
	// keys are KeyPrefix+"failbudget:"+Surface+":…".
	Redis     redis.UniversalClient
	KeyPrefix string
	// MaxClients bounds the memory of the in-memory counts (default 10000).
	MaxClients int
	Metrics    *Metrics
	Log        *slog.Logger
	Clock      func() time.Time
}

// Guard budgets failed authentications per client and globally.
type Guard struct {
	o                 Options
	perClient, global Counter
}

// NewGuard returns a guard; see Options.
func NewGuard(o Options) *Guard {
	if o.MaxClients <= 0 {
		o.MaxClients = 10000
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	g := &Guard{o: o}
	client := NewMemory(o.Window, o.MaxClients, o.Clock)
	global := NewMemory(o.Window, 1, o.Clock)
	if o.Redis == nil {
		g.perClient, g.global = client, global
		return g
	}
	prefix := o.KeyPrefix + "failbudget:" + o.Surface + ":"
	fallback := func() { o.Metrics.fallback(o.Surface) }
	rc := NewRedis(o.Redis, prefix+"ip:", o.Window, client, o.Log)
	rg := NewRedis(o.Redis, prefix, o.Window, global, o.Log)
	rc.errs, rg.errs, rc.clock, rg.clock = fallback, fallback, o.Clock, o.Clock
	g.perClient, g.global = rc, rg
	return g
}

// Verdict is the result of counting one failure.
type Verdict struct {
	// Failures is the client's failures in its window, this one included.
	Failures int
	// Blocked: the client's or the global budget is spent; refuse with
	// RetryAfter. Scope says which.
	Blocked    bool
	Scope      string
	RetryAfter time.Duration
	// First: this failure spent the budget (once per window and scope,
	// across instances with Redis), so that callers record a block once
	// instead of once per attempt.
	First bool
}

// Failed counts one failed authentication of client. When it spends a
// budget it logs a warning (the line to alert on) and counts the block in
// the metrics.
func (g *Guard) Failed(ctx context.Context, client string) Verdict {
	n, left, _ := g.perClient.Add(ctx, client)
	total, gleft, _ := g.global.Add(ctx, "global")
	v := Verdict{Failures: n}
	clientFirst := n == g.o.PerClient+1
	globalFirst := g.o.Global > 0 && total == g.o.Global+1
	switch {
	case n > g.o.PerClient:
		v.Blocked, v.Scope, v.RetryAfter = true, ScopeClient, left
	case g.o.Global > 0 && total > g.o.Global:
		v.Blocked, v.Scope, v.RetryAfter = true, ScopeGlobal, gleft
	}
	v.First = clientFirst || globalFirst
	g.o.Metrics.failure(g.o.Surface, v.Blocked)
	if clientFirst {
		g.spent(ctx, ScopeClient, client, g.o.PerClient, left)
	}
	if globalFirst {
		g.spent(ctx, ScopeGlobal, client, g.o.Global, gleft)
	}
	return v
}

// spent reports a budget that has just been spent: the log line to alert on
// and the metric.
func (g *Guard) spent(ctx context.Context, scope, client string, limit int, left time.Duration) {
	g.o.Metrics.block(g.o.Surface, scope)
	g.o.Log.WarnContext(ctx, "authentication failure budget spent: further wrong credentials are refused until the window ends (the right one still works)",
		"surface", g.o.Surface, "scope", scope, "client_ip", client, "limit", limit,
		"window", g.o.Window.String(), "retry_after", left.Round(time.Second).String())
}

// Metrics are the guards' Prometheus counters. Register Collectors() once
// per registry; one Metrics serves every guard of a process.
type Metrics struct {
	// Failures counts failed authentications by surface and result
	// (denied: 401, blocked: 429).
	Failures *prometheus.CounterVec
	// Blocks counts spent budgets by surface and scope (client, global):
	// alert on its rate.
	Blocks *prometheus.CounterVec
	// Fallbacks counts failures counted in memory because Redis did not
	// answer.
	Fallbacks *prometheus.CounterVec
}

// NewMetrics creates the counters (not registered).
func NewMetrics() *Metrics {
	return &Metrics{
		Failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "llm_proxy", Subsystem: "auth", Name: "failures_total",
			Help: "Failed management authentications (wrong management token) by surface and result (denied, blocked).",
		}, []string{"surface", "result"}),
		Blocks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "llm_proxy", Subsystem: "auth", Name: "budget_exhausted_total",
			Help: "Authentication failure budgets spent, by surface and scope (client: one IP, global: all clients).",
		}, []string{"surface", "scope"}),
		Fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "llm_proxy", Subsystem: "auth", Name: "budget_fallbacks_total",
			Help: "Authentication failures counted in this instance's memory because Redis did not answer.",
		}, []string{"surface"}),
	}
}

// Collectors returns the counters for registration.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.Failures, m.Blocks, m.Fallbacks}
}

func (m *Metrics) failure(surface string, blocked bool) {
	if m == nil {
		return
	}
	result := "denied"
	if blocked {
		result = "blocked"
	}
	m.Failures.WithLabelValues(surface, result).Inc()
}

func (m *Metrics) block(surface, scope string) {
	if m != nil {
		m.Blocks.WithLabelValues(surface, scope).Inc()
	}
}

func (m *Metrics) fallback(surface string) {
	if m != nil {
		m.Fallbacks.WithLabelValues(surface).Inc()
	}
}
