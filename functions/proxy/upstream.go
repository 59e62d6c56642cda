package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"time"

	"github.com/llm-proxy/llm-proxy/shared/apiconfig"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/httpcache"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/ratelimit"
	"github.com/llm-proxy/llm-proxy/shared/web"
)

// newTransport is the upstream transport: a pool sized for concurrency (no
// connection churn), a response-header timeout, and no overall timeout, so
// that streams are never cut.
func newTransport(cfg config.Proxy, api *apiconfig.Provider) *http.Transport {
	pick := func(v, def int) int {
		if v > 0 {
			return v
		}
		if def > 0 {
			return def
		}
		return 256
	}
	pickD := func(v, def time.Duration) time.Duration {
		if v > 0 {
			return v
		}
		return def
	}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          pick(api.Connection.MaxIdleConns, cfg.UpstreamMaxIdleConns),
		MaxIdleConnsPerHost:   pick(api.Connection.MaxIdleConnsPerHost, cfg.UpstreamMaxIdleConnsPerHost),
		IdleConnTimeout:       pickD(api.Timeouts.IdleConnection, pickD(cfg.UpstreamIdleConnTimeout, 90*time.Second)),
		ResponseHeaderTimeout: pickD(api.Timeouts.ResponseHeader, cfg.UpstreamResponseHeaderTimeout),
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ReadBufferSize:        upstreamBufferSize,
		WriteBufferSize:       upstreamBufferSize,
	}
}

// upstreamBufferSize is the size of each of the two buffers an upstream
// connection keeps for its whole life (net/http's default is 4 KiB), busy or
// idle in the pool, a stream's connection included. Reads of bodies and
// writes of request bodies larger than the buffer go around it, so a smaller
// buffer costs one more write for a request whose headers and body exceed
// it, and one more read for response headers that do.
const upstreamBufferSize = 2 << 10

// upstreamCall is the call to upstream through rp, alone or as the cache's
// Upstream. It writes through a streamWriter that the request's state keeps
// (the keep-alive comments of a stream are written through it, between the
// reverse proxy's own writes) and reports whether upstream's answer was
// complete: no failure seen, a stream that ended as upstream ended it.
func upstreamCall(rp http.Handler) httpcache.Upstream {
	return func(w http.ResponseWriter, r *http.Request) bool {
		sw := &streamWriter{ResponseWriter: w}
		st := stateFrom(r.Context())
		if st != nil {
			st.client = sw
		}
		rp.ServeHTTP(sw, r)
		return st != nil && st.complete()
	}
}

// complete reports whether upstream answered in full: no error the proxy
// saw, and a stream, if any, that was not interrupted.
func (st *state) complete() bool {
	return st.info.ErrorCode == "" && (st.stream == nil || !st.stream.interrupted())
}

// streamProxy is rp for streamed requests: the same reverse proxy copying
// with small pooled buffers (streamCopyBuffers) instead of 32 KiB ones.
func streamProxy(rp *httputil.ReverseProxy) *httputil.ReverseProxy {
	s := *rp
	s.BufferPool = streamCopyBuffers{}
	return &s
}

// forwardHeaders are the request headers that reach upstream; everything
// else (cookies, client-IP headers, X-Forwarded-*, Origin, internal
// headers, the client's Authorization) stays behind.
var forwardHeaders = []string{
	"Accept", "Accept-Language", "Content-Type", "User-Agent",
	"Openai-Organization", "Openai-Project", "Openai-Beta", "Openai-Version",
	"Idempotency-Key", "X-Stainless-Retry-Count", "X-Stainless-Timeout",
}

// forwardPrefixes are header prefixes that reach upstream (SDK telemetry).
var forwardPrefixes = []string{"X-Stainless-"}

// rewrite builds the upstream request: URL from the provider (base path
// kept), an allow-list of headers, the project's key, the body read once.
// ReverseProxy has already removed hop-by-hop and X-Forwarded-* headers, and
// with Rewrite it adds none.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	st := stateFrom(pr.In.Context())
	out := pr.Out
	out.URL = p.api.UpstreamURL(pr.In.URL.Path, pr.In.URL.RawQuery)
	out.Host = ""
	n := 2 // Authorization, X-Client-Request-Id
	for name := range pr.In.Header {
		if forwarded(name) {
			n++
		}
	}
	h := make(http.Header, n) // sized exactly: usually one small map group
	for name, vals := range pr.In.Header {
		if forwarded(name) {
			h[name] = vals
		}
	}
	if st != nil && st.auth != nil {
		h.Set("Authorization", "Bearer "+st.auth.UpstreamKey)
	}
	if st != nil {
		h.Set("X-Client-Request-Id", st.info.RequestID)
		body := st.body
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.ContentLength = int64(len(body))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		if len(body) == 0 {
			out.Body = http.NoBody
		}
	}
	out.Header = h
}

func forwarded(name string) bool {
	name = http.CanonicalHeaderKey(name)
	for _, f := range forwardHeaders {
		if name == f {
			return true
		}
	}
	for _, pre := range forwardPrefixes {
		if strings.HasPrefix(name, pre) {
			return true
		}
	}
	return false
}

// modifyResponse adjusts the upstream response headers and wraps its body
// for streaming, usage and capture.
func (p *Proxy) modifyResponse(res *http.Response) error {
	st := stateFrom(res.Request.Context())
	if st == nil {
		return nil
	}
	info := st.info
	st.responded = true
	info.UpstreamLatency = time.Since(info.Start)
	info.ResponseContentType = res.Header.Get("Content-Type")
	h := res.Header
	if id := h.Get("X-Request-Id"); id != "" {
		h.Del("X-Request-Id")
		h.Set("X-Upstream-Request-Id", id)
	}
	h.Del("Set-Cookie")
	for name := range h {
		if strings.HasPrefix(name, "Access-Control-") {
			delete(h, name)
		}
	}
	ratelimit.RenameUpstreamHeaders(h, st.decision)
	ratelimit.SetHeaders(h, st.decision)
	if res.StatusCode >= 400 {
		info.ErrorCode = upstreamErrorCode(res.StatusCode)
	}
	mt, _, _ := mime.ParseMediaType(info.ResponseContentType)
	if mt == "text/event-stream" {
		h.Del("Content-Length")
		res.ContentLength = -1
		st.stream = newRelay(res.Request.Context(), res.Body, st, p.cfg)
		res.Body = st.stream
		p.metrics.streamStarted()
		return nil
	}
	c := &capture{src: res.Body}
	if p.cfg.CaptureBodies {
		c.keep = p.cfg.MaxResponseBodyCapture
	}
	if mt == "application/json" && res.StatusCode < 300 {
		c.usageLimit = maxUsageBody
	}
	st.capture = c
	res.Body = c
	return nil
}

func upstreamErrorCode(status int) string {
	switch {
	case status == http.StatusTooManyRequests:
		return "upstream_rate_limited"
	case status >= 500:
		return "upstream_error"
	}
	return "upstream_client_error"
}

// maxUsageBody bounds the JSON body kept to read its usage.
const maxUsageBody = 8 << 20

// upstreamError answers a failed upstream round trip: 504 on timeout, 502
// on connection failure, nothing when the client is gone (logged as 499).
func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	st := stateFrom(r.Context())
	if errors.Is(r.Context().Err(), context.Canceled) {
		if st != nil {
			st.info.ErrorCode = codeClientClosed
		}
		p.log.Debug("client went away before the upstream answered", "request_id", web.RequestID(r.Context()))
		return
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		p.fail(w, r, http.StatusGatewayTimeout, llmproxy.Wrap(llmproxy.ErrUnavailable, codeUpstreamTimeout, "The upstream API did not answer in time.", err))
		return
	}
	p.fail(w, r, http.StatusBadGateway, llmproxy.Wrap(llmproxy.ErrUnavailable, codeUpstreamUnavailable, "The upstream API could not be reached.", err))
}

// capture passes a non-streamed body through, keeping a bounded copy for
// events and (for JSON) for reading usage.
type capture struct {
	src           io.ReadCloser
	keep          int64
	kept          []byte
	truncated     bool
	usageLimit    int
	usageBuf      []byte
	usageOverflow bool
}

func (c *capture) Read(b []byte) (int, error) {
	n, err := c.src.Read(b)
	if n > 0 {
		chunk := b[:n]
		if room := c.keep - int64(len(c.kept)); room > 0 {
			c.kept = append(c.kept, chunk[:min(int64(n), room)]...)
			if int64(n) > room {
				c.truncated = true
			}
		} else if c.keep > 0 {
			c.truncated = true
		}
		if c.usageLimit > 0 && !c.usageOverflow {
			if len(c.usageBuf)+n > c.usageLimit {
				c.usageOverflow, c.usageBuf = true, nil
			} else {
				c.usageBuf = append(c.usageBuf, chunk...)
			}
		}
	}
	return n, err
}

func (c *capture) Close() error { return c.src.Close() }

// preflight answers OPTIONS: CORS headers only for a listed origin (echoed,
// never "*"), 403 for an unlisted one, 204 with Allow for non-browsers.
func (p *Proxy) preflight(w http.ResponseWriter, r *http.Request, st *state) {
	h := w.Header()
	h.Add("Vary", "Origin")
	h.Set("Allow", p.api.AllowHeader())
	if st.origin == "" {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if !p.api.OriginAllowed(st.origin) {
		p.fail(w, r, http.StatusForbidden, llmproxy.E(llmproxy.ErrForbidden, codeOriginNotAllowed, "Origin not allowed."))
		return
	}
	h.Set("Access-Control-Allow-Origin", st.origin)
	h.Set("Access-Control-Allow-Methods", p.api.AllowHeader())
	allowHeaders := "Authorization, Content-Type, OpenAI-Organization, OpenAI-Project, OpenAI-Beta, Idempotency-Key, X-Request-ID"
	if req := r.Header.Get("Access-Control-Request-Headers"); req != "" && saneHeaderList(req) {
		allowHeaders = req
	}
	h.Set("Access-Control-Allow-Headers", allowHeaders)
	h.Set("Access-Control-Expose-Headers", exposeHeaders)
	h.Set("Access-Control-Max-Age", "86400")
	h.Add("Vary", "Access-Control-Request-Headers")
	w.WriteHeader(http.StatusNoContent)
}

const exposeHeaders = "X-Request-ID, X-Client-Request-Id, X-Upstream-Request-Id, X-PROXY-CACHE, Retry-After, " +
	"X-Ratelimit-Limit-Requests, X-Ratelimit-Remaining-Requests, X-Ratelimit-Reset-Requests, " +
	"X-Ratelimit-Limit-Tokens, X-Ratelimit-Remaining-Tokens, X-Ratelimit-Reset-Tokens"

func saneHeaderList(s string) bool {
	if len(s) > 1024 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == ',' || c == ' ' || c == '-' || c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// checkOrigin applies required_headers and allowed_origins to a non-preflight
// request and sets the CORS response headers for a listed origin. Requests
// without Origin (servers) pass unless Origin is required.
func (p *Proxy) checkOrigin(w http.ResponseWriter, r *http.Request, st *state) error {
	for _, name := range p.api.RequiredHeaders {
		if r.Header.Get(name) == "" {
			return llmproxy.E(llmproxy.ErrInvalid, strings.ToLower(strings.ReplaceAll(name, "-", "_"))+"_required",
				name+" header required.")
		}
	}
	if st.origin == "" {
		return nil
	}
	w.Header().Add("Vary", "Origin")
	if !p.api.OriginAllowed(st.origin) {
		return llmproxy.E(llmproxy.ErrForbidden, codeOriginNotAllowed, "Origin not allowed.")
	}
	w.Header().Set("Access-Control-Allow-Origin", st.origin)
	w.Header().Set("Access-Control-Expose-Headers", exposeHeaders)
	return nil
}
