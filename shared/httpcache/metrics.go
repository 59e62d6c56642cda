package httpcache

import "github.com/prometheus/client_golang/prometheus"

// Stats is a snapshot of the cache's counters (for the JSON /metrics of the
// original: cache_hits, cache_misses, cache_bypass, cache_stores).
type Stats struct {
	Hits, Misses, Stores, Bypasses, Errors, Evictions uint64
	// Bytes and Entries are known only for the in-memory backend.
	Bytes, Entries int64
}

// Stats returns the current counters. A nil cache reports zeros.
func (c *Cache) Stats() Stats {
	if c == nil {
		return Stats{}
	}
	s := Stats{
		Hits: c.hits.Load(), Misses: c.misses.Load(), Stores: c.stores.Load(),
		Bypasses: c.bypasses.Load(), Errors: c.errs.Load(),
	}
	if st, ok := c.backend.(statser); ok {
		b := st.Stats()
		s.Bytes, s.Entries, s.Evictions = b.Bytes, b.Entries, b.Evictions
	}
	return s
}

// Collectors returns the cache's Prometheus metrics, to be registered once
// by the binary that serves /metrics:
//
//	llm_proxy_http_cache_hits_total, _misses_total, _stores_total,
//	_bypasses_total, _errors_total, _evictions_total (counters),
//	llm_proxy_http_cache_bytes, _entries (gauges, in-memory backend only).
func (c *Cache) Collectors() []prometheus.Collector {
	if c == nil {
		return nil
	}
	counter := func(name, help string, f func() uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "llm_proxy_http_cache_" + name, Help: help},
			func() float64 { return float64(f()) })
	}
	out := []prometheus.Collector{
		counter("hits_total", "Responses served from the cache.", c.hits.Load),
		counter("misses_total", "Cacheable requests forwarded upstream (including client revalidations).", c.misses.Load),
		counter("stores_total", "Responses stored in the cache.", c.stores.Load),
		counter("bypasses_total", "Requests that bypassed the cache (method, no opt-in, no-store).", c.bypasses.Load),
		counter("errors_total", "Cache backend failures (each treated as a miss).", c.errs.Load),
	}
	if st, ok := c.backend.(statser); ok {
		out = append(out,
			counter("evictions_total", "Entries evicted to stay within HTTP_CACHE_MAX_BYTES.", func() uint64 { return st.Stats().Evictions }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "llm_proxy_http_cache_bytes", Help: "Bytes held by the in-memory cache."},
				func() float64 { return float64(st.Stats().Bytes) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "llm_proxy_http_cache_entries", Help: "Records held by the in-memory cache."},
				func() float64 { return float64(st.Stats().Entries) }),
		)
	}
	return out
}
