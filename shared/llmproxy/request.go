package llmproxy

import "time"

// Cache statuses of a proxied request (also the X-PROXY-CACHE values).
const (
	CacheHit    = "hit"
	CacheMiss   = "miss"
	CacheStored = "stored"
	CacheBypass = "bypass"
)

// RequestInfo is what the proxy learns about one proxied request as it goes:
// the ids, the authenticated token and project, the model, cache status,
// timing, usage and bounded copies of the bodies. The proxy owns it: it
// fills it in from what it decides and from what the layers it calls return
// (the cache its status), and hands it to the event sink as an argument
// when the response has ended.
//
// It belongs to the request's goroutine; a sink that keeps it past the
// call copies it.
type RequestInfo struct {
	RequestID       string // our request id (X-Request-ID; the CloudEvent id)
	ClientRequestID string // the client's own X-Request-ID when it sent a sane one (echoed as X-Client-Request-Id)
	Method          string
	Path            string
	TokenID         string
	ProjectID       string
	Model           string
	Stream          bool // the client asked for a stream
	Status          int  // status sent to the client (499 when it went away)
	ErrorCode       string
	CacheStatus     string // CacheHit, CacheMiss, CacheStored, CacheBypass or ""

	Start           time.Time
	TimeToFirstByte time.Duration // until the first response byte reached the client
	Duration        time.Duration // until the response ended
	UpstreamLatency time.Duration // until upstream response headers arrived

	Usage Usage

	// Bounded copies of the bodies (OBSERVABILITY_MAX_*_BODY_BYTES); for a
	// stream ResponseBody holds the raw SSE bytes.
	RequestBody       []byte
	ResponseBody      []byte
	RequestTruncated  bool
	ResponseTruncated bool
	// ResponseContentType is the upstream response's Content-Type.
	ResponseContentType string
}
