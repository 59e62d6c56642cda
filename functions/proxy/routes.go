package proxy

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MetricsRoutes mounts the metrics endpoints at METRICS_PATH (when
// ENABLE_METRICS): Prometheus text at <path> and <path>/prometheus (the
// original's path, used by its dashboards), the original's JSON counters at
// <path>/json. others (the process's other registries: limiter, cache,
// events) are merged into the Prometheus output.
func (p *Proxy) MetricsRoutes(mux *http.ServeMux, path string, others ...prometheus.Gatherer) {
	g := append(prometheus.Gatherers{p.metrics.Registry}, others...)
	prom := promhttp.HandlerFor(g, promhttp.HandlerOpts{})
	mux.Handle("GET "+path, prom)
	mux.Handle("GET "+path+"/prometheus", prom)
	mux.Handle("GET "+path+"/json", p.metrics.JSONMetricsHandler())
}
