package llmproxy

import (
	"context"
	"time"
)

// Cache statuses of a proxied request (also the X-PROXY-CACHE values).
const (
	CacheHit    = "hit"
	CacheMiss   = "miss"
	CacheStored = "stored"
	CacheBypass = "bypass"
)

// RequestInfo is what the proxy learns about one proxied request as it goes:
// the authenticated token and project, the model, cache status, timing, usage
// and bounded copies of the bodies. The proxy creates it at the start of a
// request and stores it in the context; layers (cache, limits) fill in their
// part; the event emitter reads it when the response has ended.
//
// It is owned by the request's goroutine; layers must not keep it after the
// request ends.
type RequestInfo struct {
	RequestID       string // the proxy's request id (echoed as X-Request-ID)
	ClientRequestID string // the client's own X-Request-ID when it sent one
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

type requestInfoKey struct{}

// WithRequestInfo stores info in ctx.
func WithRequestInfo(ctx context.Context, info *RequestInfo) context.Context {
	return context.WithValue(ctx, requestInfoKey{}, info)
}

// RequestInfoFrom returns the request's info, or nil outside the proxy.
func RequestInfoFrom(ctx context.Context) *RequestInfo {
	info, _ := ctx.Value(requestInfoKey{}).(*RequestInfo)
	return info
}
