package ratelimit

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

// Metrics are the limiter's Prometheus counters. Register Collectors() once
// per registry.
type Metrics struct {
	// Decisions counts admissions by result: allowed, rate_limited,
	// quota_exceeded, error.
	Decisions *prometheus.CounterVec
	// BackendFailures counts admissions the primary limiter (Redis) could not
	// decide, by policy and what happened: rejected (fail-closed, 503) or
	// fallback (fail-open, decided by the local limiter).
	BackendFailures *prometheus.CounterVec
	// Leased counts admissions the Redis limiter decided from a lease,
	// without a round trip (a part of Decisions' allowed).
	Leased prometheus.Counter
}

// NewMetrics creates the counters (not registered).
func NewMetrics() *Metrics {
	return &Metrics{
		Decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "llm_proxy", Subsystem: "ratelimit", Name: "decisions_total",
			Help: "Rate limit admissions by result (allowed, rate_limited, quota_exceeded, error).",
		}, []string{"result"}),
		BackendFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "llm_proxy", Subsystem: "ratelimit", Name: "backend_failures_total",
			Help: "Admissions the shared limiter (Redis) could not decide, by failure policy and outcome (rejected or fallback).",
		}, []string{"policy", "outcome"}),
		Leased: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "llm_proxy", Subsystem: "ratelimit", Name: "leased_total",
			Help: "Admissions decided from a lease this process holds, without a Redis round trip (RATE_LIMIT_LEASE).",
		}),
	}
}

// Collectors returns the counters for registration.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.Decisions, m.BackendFailures, m.Leased}
}

func (m *Metrics) observe(d Decision, err error) {
	if m == nil {
		return
	}
	switch {
	case err != nil:
		m.Decisions.WithLabelValues("error").Inc()
	case d.Allowed:
		m.Decisions.WithLabelValues("allowed").Inc()
	case d.Code == llmproxy.CodeQuotaExceeded:
		m.Decisions.WithLabelValues("quota_exceeded").Inc()
	default:
		m.Decisions.WithLabelValues("rate_limited").Inc()
	}
}
