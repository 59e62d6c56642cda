package proxy

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/web"
)

// Metrics are the proxy's metrics in a registry of their own: Prometheus
// series with labels (llm_proxy_http_*, llm_proxy_model_tokens_total, …),
// the original's unlabelled counters under their original names
// (llm_proxy_requests_total, llm_proxy_errors_total, llm_proxy_cache_*_total,
// llm_proxy_uptime_seconds) and the Go runtime collectors. Other parts of the
// process may register their collectors in Registry.
type Metrics struct {
	Registry *prometheus.Registry
	started  time.Time

	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	upstream    *prometheus.HistogramVec
	ttfb        *prometheus.HistogramVec
	tokens      *prometheus.CounterVec
	inFlight    prometheus.Gauge
	streams     prometheus.Gauge
	streamTotal prometheus.Counter

	// The original's JSON /metrics counters.
	reqCount, errCount, cacheHits, cacheMisses, cacheBypass, cacheStores atomic.Int64

	// Series resolved once: WithLabelValues hashes its labels on every call.
	byEndpoint sync.Map // endpoint → *endpointSeries
	tokenMu    sync.Mutex
	tokenSet   [2][2]prometheus.Counter // [prompt, completion][reported, estimated]

	unattributed *prometheus.CounterVec
	byCode       sync.Map // error code → prometheus.Counter of unattributed
}

// endpointSeries are one endpoint's labelled series. Endpoints are the
// provider's allowed endpoints and "other": a bounded set.
type endpointSeries struct {
	duration, upstream, ttfb prometheus.Observer
	mu                       sync.Mutex
	requests                 map[int]prometheus.Counter // status class (2 for 2xx, 499) → counter
}

func (m *Metrics) endpoint(ep string) *endpointSeries {
	if s, ok := m.byEndpoint.Load(ep); ok {
		return s.(*endpointSeries)
	}
	s, _ := m.byEndpoint.LoadOrStore(ep, &endpointSeries{
		duration: m.duration.WithLabelValues(ep),
		upstream: m.upstream.WithLabelValues(ep),
		ttfb:     m.ttfb.WithLabelValues(ep),
		requests: map[int]prometheus.Counter{},
	})
	return s.(*endpointSeries)
}

func (m *Metrics) requestCounter(ep string, s *endpointSeries, status int) prometheus.Counter {
	class := status / 100
	if status == 499 {
		class = 499
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.requests[class]
	if c == nil {
		c = m.requests.WithLabelValues(ep, statusClass(status))
		s.requests[class] = c
	}
	return c
}

func (m *Metrics) tokenCounter(completion bool, source llmproxy.UsageSource) prometheus.Counter {
	k, src := 0, 0
	if completion {
		k = 1
	}
	if source == llmproxy.UsageEstimated {
		src = 1
	}
	m.tokenMu.Lock()
	defer m.tokenMu.Unlock()
	c := m.tokenSet[k][src]
	if c == nil {
		c = m.tokens.WithLabelValues([2]string{"prompt", "completion"}[k], string(source))
		m.tokenSet[k][src] = c
	}
	return c
}

// NewMetrics creates and registers the proxy's metrics in a new registry.
func NewMetrics() *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry(), started: time.Now()}
	lat := []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "llm_proxy_http_requests_total", Help: "Proxied requests by endpoint and status class (2xx, 4xx, 499, 5xx).",
	}, []string{"endpoint", "code"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "llm_proxy_http_request_duration_seconds", Help: "Time from request to the end of the response, streams included.", Buckets: lat,
	}, []string{"endpoint"})
	m.upstream = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "llm_proxy_upstream_latency_seconds", Help: "Time until the upstream's response headers arrived.", Buckets: lat,
	}, []string{"endpoint"})
	m.ttfb = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "llm_proxy_time_to_first_byte_seconds", Help: "Time until the first response byte was written to the client.", Buckets: lat,
	}, []string{"endpoint"})
	m.tokens = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "llm_proxy_model_tokens_total", Help: "Model tokens by kind (prompt, completion) and source (reported, estimated).",
	}, []string{"kind", "source"})
	m.unattributed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "llm_proxy_unattributed_requests_total",
		Help: "Requests refused before a token was recognised (no CloudEvent is emitted for them), by error code.",
	}, []string{"error_code"})
	m.inFlight = prometheus.NewGauge(prometheus.GaugeOpts{Name: "llm_proxy_http_requests_in_flight", Help: "Requests being served."})
	m.streams = prometheus.NewGauge(prometheus.GaugeOpts{Name: "llm_proxy_streams_in_flight", Help: "SSE streams being relayed."})
	m.streamTotal = prometheus.NewCounter(prometheus.CounterOpts{Name: "llm_proxy_streams_total", Help: "SSE streams relayed."})
	orig := func(name, help string, v *atomic.Int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v.Load()) })
	}
	m.Registry.MustRegister(
		m.requests, m.duration, m.upstream, m.ttfb, m.tokens, m.unattributed, m.inFlight, m.streams, m.streamTotal,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "llm_proxy_uptime_seconds", Help: "Seconds since the proxy started."},
			func() float64 { return time.Since(m.started).Seconds() }),
		orig("llm_proxy_requests_total", "Proxied requests (all outcomes).", &m.reqCount),
		orig("llm_proxy_errors_total", "Proxied requests answered with status >= 400.", &m.errCount),
		orig("llm_proxy_cache_hits_total", "Responses served from the cache.", &m.cacheHits),
		orig("llm_proxy_cache_misses_total", "Cache lookups that missed.", &m.cacheMisses),
		orig("llm_proxy_cache_bypass_total", "Requests that bypassed the cache.", &m.cacheBypass),
		orig("llm_proxy_cache_stores_total", "Responses stored in the cache.", &m.cacheStores),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

func (m *Metrics) begin() { m.inFlight.Inc() }

func (m *Metrics) streamStarted() {
	m.streams.Inc()
	m.streamTotal.Inc()
}

// end records one finished request.
func (m *Metrics) end(st *state, info *llmproxy.RequestInfo) {
	m.inFlight.Dec()
	if st.stream != nil {
		m.streams.Dec()
	}
	ep := st.endpoint
	if ep == "" {
		ep = "other"
	}
	s := m.endpoint(ep)
	m.requestCounter(ep, s, info.Status).Inc()
	s.duration.Observe(info.Duration.Seconds())
	if st.responded {
		s.upstream.Observe(info.UpstreamLatency.Seconds())
	}
	if info.TimeToFirstByte > 0 {
		s.ttfb.Observe(info.TimeToFirstByte.Seconds())
	}
	if u := info.Usage; u.Source == llmproxy.UsageReported || u.Source == llmproxy.UsageEstimated {
		m.tokenCounter(false, u.Source).Add(float64(u.PromptTokens))
		m.tokenCounter(true, u.Source).Add(float64(u.CompletionTokens))
	}
	m.reqCount.Add(1)
	if info.Status >= 400 {
		m.errCount.Add(1)
	}
	switch info.CacheStatus {
	case llmproxy.CacheHit:
		m.cacheHits.Add(1)
	case llmproxy.CacheStored:
		m.cacheStores.Add(1)
		m.cacheMisses.Add(1)
	case llmproxy.CacheBypass:
		m.cacheBypass.Add(1)
	case llmproxy.CacheMiss:
		m.cacheMisses.Add(1)
	}
}

// refusedUnattributed counts a refusal before a token was recognised by
// its error code (the proxy's own codes: a bounded set).
func (m *Metrics) refusedUnattributed(code string) {
	c, ok := m.byCode.Load(code)
	if !ok {
		c, _ = m.byCode.LoadOrStore(code, m.unattributed.WithLabelValues(code))
	}
	c.(prometheus.Counter).Inc()
}

func statusClass(s int) string {
	if s == 499 {
		return "499"
	}
	return strconv.Itoa(s/100) + "xx"
}

// MetricsHandler serves the registry in the Prometheus text format.
func (m *Metrics) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// JSONMetrics is the original's JSON /metrics document.
type JSONMetrics struct {
	UptimeSeconds float64 `json:"uptime_seconds"`
	RequestCount  int64   `json:"request_count"`
	ErrorCount    int64   `json:"error_count"`
	CacheHits     int64   `json:"cache_hits"`
	CacheMisses   int64   `json:"cache_misses"`
	CacheBypass   int64   `json:"cache_bypass"`
	CacheStores   int64   `json:"cache_stores"`
}

// Snapshot returns the JSON counters now.
func (m *Metrics) Snapshot() JSONMetrics {
	return JSONMetrics{
		UptimeSeconds: time.Since(m.started).Seconds(),
		RequestCount:  m.reqCount.Load(), ErrorCount: m.errCount.Load(),
		CacheHits: m.cacheHits.Load(), CacheMisses: m.cacheMisses.Load(),
		CacheBypass: m.cacheBypass.Load(), CacheStores: m.cacheStores.Load(),
	}
}

// JSONMetricsHandler serves the original's JSON counters.
func (m *Metrics) JSONMetricsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		web.WriteJSON(w, http.StatusOK, m.Snapshot())
	})
}
