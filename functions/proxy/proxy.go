// Package proxy is the proxy function: the OpenAI-compatible /v1/* surface.
// It authenticates a withering token, enforces quotas and limits, checks
// the request against the provider file (methods, endpoints, parameters,
// origins), swaps in the project's upstream key, streams the answer back
// as the upstream sends it, counts usage (reported or estimated) and reports
// each request to the metrics, the usage batcher and the event sink, all off
// the request path.
//
// Pipeline: request id → CORS preflight → method/endpoint allow-list →
// origin rules → bearer token → validation → body (read once, bounded) →
// param_whitelist → limits (atomic admit) → cache layer (optional) → key
// swap → upstream → usage → events.
package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"strconv"
	"sync"
	"time"

	"github.com/llm-proxy/llm-proxy/shared/apiconfig"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/httpcache"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/ratelimit"
	"github.com/llm-proxy/llm-proxy/shared/tokens"
	"github.com/llm-proxy/llm-proxy/shared/usage"
	"github.com/llm-proxy/llm-proxy/shared/web"
)

// Authenticator validates a plaintext token (tokens.Validator satisfies it).
// Errors are *llmproxy.Error: 401 for unknown/revoked/expired/malformed
// tokens, 403 for an inactive project, ErrUnavailable for infrastructure.
type Authenticator interface {
	Validate(ctx context.Context, token string) (*tokens.Auth, error)
}

// UsageRecorder counts requests, cache hits and model tokens per token and
// project off the request path (tokens.UsageBatcher satisfies it). Record
// must not block.
type UsageRecorder interface {
	Record(tokenID, projectID string, cacheHit bool, promptTokens, completionTokens int64)
}

// Cache is the response cache around the upstream call (*httpcache.Cache
// satisfies it, a nil one too: it only calls next). Serve answers r from the
// cache or through next and returns the request's cache status
// (llmproxy.CacheHit, CacheMiss, CacheStored, CacheBypass, or "").
type Cache interface {
	Serve(w http.ResponseWriter, r *http.Request, req httpcache.Request, next httpcache.Upstream) string
}

// EventSink receives every finished request, rejected ones included
// (events.Publisher-like). It must not block and must not keep info after
// returning without copying it.
type EventSink interface {
	RequestCompleted(info *llmproxy.RequestInfo)
}

// Deps are the proxy's collaborators. Config, API and Auth are required.
type Deps struct {
	Config config.Proxy
	// API is the upstream provider (apiconfig.Load).
	API  *apiconfig.Provider
	Auth Authenticator
	// Limiter admits requests (quotas and windows). Nil: an in-memory
	// limiter of this process (ratelimit.NewMemory).
	Limiter ratelimit.Limiter
	// Settler settles the limiter's reservations off the request path (the
	// owner closes it after the server drained); nil: settled inline before
	// the handler returns.
	Settler *ratelimit.Settler
	// Usage persists request counters (nil: not persisted).
	Usage UsageRecorder
	// Counter estimates tokens (nil: a new one; call Warm on it in the
	// background at start).
	Counter *usage.Counter
	// Cache answers from stored responses around the upstream call; nil:
	// no cache.
	Cache Cache
	// Events receives finished requests; nil: none.
	Events EventSink
	// Metrics; nil: a new one (see (*Proxy).Metrics).
	Metrics *Metrics
	Log     *slog.Logger
	// Transport overrides the tuned upstream transport (tests).
	Transport http.RoundTripper
}

// Proxy is the /v1/* handler.
type Proxy struct {
	cfg       config.Proxy
	api       *apiconfig.Provider
	auth      Authenticator
	limiter   ratelimit.Limiter
	settler   *ratelimit.Settler
	usage     UsageRecorder
	counter   *usage.Counter
	cache     Cache
	events    EventSink
	metrics   *Metrics
	log       *slog.Logger
	transport http.RoundTripper
	// upstream calls upstream through the reverse proxy; streamUpstream is
	// the same for streamed requests (small copy buffers).
	upstream, streamUpstream httpcache.Upstream
	// withIDs is the proxy inside web.WithRequestID, for a request served
	// without it.
	withIDs http.Handler
}

// Error codes of the proxy's own refusals (beyond llmproxy's).
const (
	codeEndpointNotFound    = "endpoint_not_found"
	codeParamNotAllowed     = "param_not_allowed"
	codeInvalidBody         = "invalid_request_body"
	codeOriginNotAllowed    = "origin_not_allowed"
	codeUpstreamTimeout     = "upstream_timeout"
	codeUpstreamUnavailable = "upstream_unavailable"
	codeStreamInterrupted   = "upstream_stream_interrupted"
	codeClientClosed        = "client_closed_request"
)

// New builds the proxy.
func New(deps Deps) (*Proxy, error) {
	switch {
	case deps.API == nil:
		return nil, errors.New("proxy: Deps.API is required")
	case deps.Auth == nil:
		return nil, errors.New("proxy: Deps.Auth is required")
	}
	if deps.Config.MaxRequestSize <= 0 {
		deps.Config.MaxRequestSize = 10 << 20
	}
	p := &Proxy{
		cfg: deps.Config, api: deps.API, auth: deps.Auth, limiter: deps.Limiter, settler: deps.Settler,
		usage: deps.Usage, counter: deps.Counter, cache: deps.Cache, events: deps.Events,
		metrics: deps.Metrics, log: deps.Log, transport: deps.Transport,
	}
	if p.limiter == nil {
		p.limiter = ratelimit.NewMemory(ratelimit.MemoryOptions{})
	}
	if p.counter == nil {
		p.counter = usage.NewCounter()
	}
	if p.metrics == nil {
		p.metrics = NewMetrics()
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.transport == nil {
		p.transport = newTransport(deps.Config, deps.API)
	}
	rp := &httputil.ReverseProxy{
		Rewrite:   p.rewrite,
		Transport: p.transport,
		// 0: a body of known length goes out through the server's buffer
		// and leaves at the end (one write); SSE and bodies of unknown
		// length are flushed as they arrive whatever this says.
		FlushInterval:  0,
		BufferPool:     copyBuffers{},
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.upstreamError,
		ErrorLog:       slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
	}
	p.upstream = upstreamCall(rp)
	p.streamUpstream = upstreamCall(streamProxy(rp))
	p.withIDs = web.WithRequestID(http.HandlerFunc(p.ServeHTTP))
	return p, nil
}

// copyBuffers pools the 32 KiB buffers the reverse proxy copies response
// bodies with (without a pool it allocates one per request).
type copyBuffers struct{}

var copyBufferPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (copyBuffers) Get() []byte  { return *copyBufferPool.Get().(*[]byte) }
func (copyBuffers) Put(b []byte) { copyBufferPool.Put(&b) }

// Metrics returns the proxy's metrics (for MetricsHandler and
// JSONMetricsHandler).
func (p *Proxy) Metrics() *Metrics { return p.metrics }

// state is the per-request state shared between the handler, Rewrite,
// ModifyResponse and the stream relay.
type state struct {
	info       *llmproxy.RequestInfo
	auth       *tokens.Auth
	body       []byte
	decision   ratelimit.Decision
	endpoint   string
	stripUsage bool // the proxy added include_usage: remove the usage chunk
	promptEst  int64
	fields     usage.Fields // the body's members token counting reads
	responded  bool         // upstream answered (ModifyResponse ran)
	stream     *relay
	client     *streamWriter // what the reverse proxy writes to (stream keep-alives too)
	capture    *capture
	origin     string
}

type stateKey struct{}

func stateFrom(ctx context.Context) *state {
	st, _ := ctx.Value(stateKey{}).(*state)
	return st
}

// ServeHTTP handles one /v1/* request. The request ids are web.WithRequestID's
// (web.Chain): ours, echoed as X-Request-ID, and the client's own; served
// without it, the proxy runs inside it.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := web.RequestID(ctx)
	if id == "" {
		p.withIDs.ServeHTTP(w, r)
		return
	}
	info := &llmproxy.RequestInfo{
		RequestID: id, ClientRequestID: web.ClientRequestID(ctx),
		Method: r.Method, Path: r.URL.Path, Start: time.Now(),
	}
	st := &state{info: info, endpoint: p.api.Endpoint(r.URL.Path)}
	r = r.WithContext(context.WithValue(ctx, stateKey{}, st))
	rw := &respWriter{ResponseWriter: w, start: info.Start}
	p.metrics.begin()
	defer p.finish(rw, r, st)
	p.serve(rw, r, st)
}

func (p *Proxy) serve(w *respWriter, r *http.Request, st *state) {
	info := st.info
	st.origin = r.Header.Get("Origin")
	if r.Method == http.MethodOptions {
		p.preflight(w, r, st)
		return
	}
	if !p.api.AllowsMethod(r.Method) {
		w.Header().Set("Allow", p.api.AllowHeader())
		p.fail(w, r, http.StatusMethodNotAllowed, llmproxy.E(llmproxy.ErrMethodNotAllowed, llmproxy.CodeMethodNotAllowed,
			fmt.Sprintf("Method %s is not allowed on this endpoint.", r.Method)))
		return
	}
	if st.endpoint == "" {
		p.fail(w, r, http.StatusNotFound, llmproxy.E(llmproxy.ErrNotFound, codeEndpointNotFound,
			fmt.Sprintf("Invalid URL (%s %s)", r.Method, truncate(r.URL.Path, 200))))
		return
	}
	if err := p.checkOrigin(w, r, st); err != nil {
		p.fail(w, r, 0, err)
		return
	}
	token, ok := web.BearerToken(r.Header.Get("Authorization"))
	if !ok {
		p.fail(w, r, 0, llmproxy.E(llmproxy.ErrUnauthorized, llmproxy.CodeInvalidToken,
			"Missing or invalid Authorization header: expected 'Bearer <token>'."))
		return
	}
	auth, err := p.auth.Validate(r.Context(), token)
	if err != nil {
		if auth != nil { // a known token refused: attribute the request
			info.TokenID, info.ProjectID = auth.Token.ID, auth.Project.ID
		}
		var le *llmproxy.Error
		if !errors.As(err, &le) {
			err = llmproxy.Wrap(llmproxy.ErrUnavailable, llmproxy.CodeUnavailable, "token validation is temporarily unavailable", err)
		}
		p.fail(w, r, 0, err)
		return
	}
	st.auth = auth
	info.TokenID, info.ProjectID = auth.Token.ID, auth.Project.ID

	body, err := p.readBody(r)
	if err != nil {
		p.fail(w, r, 0, err)
		return
	}
	in, err := inspect(p.api, r.Header.Get("Content-Type"), body)
	if err != nil {
		p.fail(w, r, 0, err)
		return
	}
	info.Model, info.Stream = in.model, in.stream
	if in.stream && in.members != nil && !in.includeUsage && usageOptionEndpoint(st.endpoint) {
		if nb, err := withIncludeUsage(in.members); err == nil {
			body, st.stripUsage = nb, true
		}
	}
	st.body = body
	if p.cfg.CaptureBodies {
		info.RequestBody, info.RequestTruncated = bounded(body, p.cfg.MaxRequestBodyCapture)
	}

	st.fields = in.fields
	if !p.admit(w, r, st, in.model) {
		return
	}
	if info.Stream {
		// No server deadline may cut a stream: the write deadline would end
		// it, an expired read deadline would cancel its context.
		rc := http.NewResponseController(w.ResponseWriter)
		_ = rc.SetWriteDeadline(time.Time{})
		_ = rc.SetReadDeadline(time.Time{})
	}
	// The body, read once, reaches upstream through the state (rewrite)
	// and the cache as an argument: the inbound request keeps none.
	r.Body, r.ContentLength, r.GetBody = http.NoBody, 0, nil
	if d := p.api.Timeouts.Request; d > 0 && !info.Stream {
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		r = r.WithContext(ctx)
	}
	up := p.upstream
	if info.Stream {
		up = p.streamUpstream
	}
	if p.cache == nil {
		up(w, r)
		return
	}
	info.CacheStatus = p.cache.Serve(w, r, httpcache.Request{ProjectID: info.ProjectID, Stream: info.Stream, Body: body}, up)
}

// usageOptionEndpoint reports whether the endpoint accepts
// stream_options.include_usage.
func usageOptionEndpoint(ep string) bool {
	return ep == "/v1/chat/completions" || ep == "/v1/completions"
}

// readBody reads the body once, bounded by MAX_REQUEST_SIZE.
func (p *Proxy) readBody(r *http.Request) ([]byte, error) {
	limit := p.cfg.MaxRequestSize
	tooLarge := func() error {
		return llmproxy.E(llmproxy.ErrTooLarge, llmproxy.CodeTooLarge,
			fmt.Sprintf("Request body exceeds the limit of %d bytes.", limit))
	}
	if r.ContentLength > limit {
		return nil, tooLarge()
	}
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	var body []byte
	var err error
	if n := r.ContentLength; n > 0 {
		// The server bounds the body by its Content-Length: read it into a
		// buffer of that size at once instead of growing one.
		body = make([]byte, n)
		_, err = io.ReadFull(r.Body, body)
	} else {
		body, err = io.ReadAll(io.LimitReader(r.Body, limit+1))
	}
	if err != nil {
		return nil, llmproxy.Wrap(llmproxy.ErrInvalid, codeInvalidBody, "the request body could not be read", err)
	}
	if int64(len(body)) > limit {
		return nil, tooLarge()
	}
	return body, nil
}

// admit asks the limiter; it answers 429 or 503 itself and reports false.
func (p *Proxy) admit(w *respWriter, r *http.Request, st *state, model string) bool {
	t, proj := st.auth.Token, st.auth.Project
	req := ratelimit.Request{
		TokenID: t.ID, ProjectID: proj.ID,
		TokenLimits: t.Limits, ProjectLimits: proj.Limits,
		UsedRequests: t.RequestCount,
	}
	if t.MaxRequests != nil && *t.MaxRequests > 0 {
		req.MaxRequests = *t.MaxRequests
	}
	// Requests without a model (GET /v1/models, files) use no model tokens:
	// they reserve none, so their settlement costs nothing.
	if model != "" && (hasTokenLimit(t.Limits) || hasTokenLimit(proj.Limits)) {
		st.promptEst = p.counter.PromptTokensOf(model, st.fields)
		req.ReserveTokens = ratelimit.ReserveTokens(st.promptEst, st.fields.MaxOutput(), p.cfg.DefaultReserveTokens)
	}
	d, err := p.limiter.Admit(r.Context(), req)
	if err != nil {
		p.fail(w, r, 0, llmproxy.Wrap(llmproxy.ErrUnavailable, llmproxy.CodeUnavailable, "rate limiting is temporarily unavailable", err))
		return false
	}
	if !d.Allowed {
		ratelimit.SetHeaders(w.Header(), d)
		code := d.Code
		if code == "" {
			code = llmproxy.CodeRateLimitExceeded
		}
		msg := "Rate limit exceeded. Retry after the time given in Retry-After."
		switch {
		case code == llmproxy.CodeQuotaExceeded:
			msg = "The token's request quota (max_requests) is exhausted."
		case d.Permanent && d.Reason != "": // x-should-retry: false
			msg = "Rate limit exceeded: the " + d.Reason + "; retrying cannot help."
		}
		p.fail(w, r, http.StatusTooManyRequests, llmproxy.E(llmproxy.ErrRateLimited, code, msg))
		return false
	}
	st.decision = d
	return true
}

func hasTokenLimit(l llmproxy.Limits) bool { return l.TokensPerMinute > 0 || l.TokensPerDay > 0 }

// fail answers err on the /v1 surface (OpenAI-shaped, logged once by the
// shared policy). status 0 takes the error kind's.
func (p *Proxy) fail(w http.ResponseWriter, r *http.Request, status int, err error) {
	if status == 0 {
		status = web.StatusOf(err)
	}
	st := stateFrom(r.Context())
	if st != nil {
		st.info.ErrorCode = llmproxy.ErrorCode(err)
	}
	web.FailOpenAI(w, r, p.log, status, err)
}

// finish runs once per request after the response ended: usage, limiter
// settlement, usage counters, metrics and the event.
func (p *Proxy) finish(w *respWriter, r *http.Request, st *state) {
	w.flushWhole()
	info := st.info
	info.Duration = time.Since(info.Start)
	info.Status = w.status
	if info.Status == 0 {
		if r.Context().Err() != nil {
			info.Status = 499
		} else {
			info.Status = http.StatusOK
		}
	}
	if !w.firstByte.IsZero() {
		info.TimeToFirstByte = w.firstByte.Sub(info.Start)
	}
	if s := st.stream; s != nil && s.interrupted() {
		// The 200 is on the wire; the status recorded says how the stream
		// ended (see events/README.md).
		if r.Context().Err() != nil {
			info.Status = 499 // the client went away mid-stream
			if info.ErrorCode == "" {
				info.ErrorCode = codeClientClosed
			}
		} else {
			info.Status = http.StatusBadGateway // upstream cut it: the client got the error event
			info.ErrorCode = codeStreamInterrupted
		}
	}
	web.SetOutcome(w.ResponseWriter, info.Status, info.ErrorCode)
	p.computeUsage(st)
	if s := st.stream; s != nil {
		info.ResponseBody, info.ResponseTruncated = s.kept, s.truncate
	} else if c := st.capture; c != nil {
		info.ResponseBody, info.ResponseTruncated = c.kept, c.truncated
	}
	if res := st.decision.Reservation; res != nil {
		p.settle(r, info, res)
	}
	if st.decision.Allowed && p.usage != nil {
		hit := info.CacheStatus == llmproxy.CacheHit
		var prompt, completion int64
		if !hit { // cache hits bill no model tokens
			prompt, completion = info.Usage.PromptTokens, info.Usage.CompletionTokens
		}
		p.usage.Record(info.TokenID, info.ProjectID, hit, prompt, completion)
	}
	p.metrics.end(st, info)
	// A request refused before a token was recognised belongs to no
	// project: it is counted and access-logged, not emitted. Anyone can
	// send such requests, and an event each would let them drive the
	// dispatchers' traffic, and what a paid observability service bills,
	// without a token. A CORS preflight (no project, no error) is neither.
	switch {
	case info.ProjectID != "":
		if p.events != nil {
			p.events.RequestCompleted(info)
		}
	case info.ErrorCode != "":
		p.metrics.refusedUnattributed(info.ErrorCode)
	}
}

// settle replaces the reservation with the request's model tokens, or
// returns it (failure, disconnect, cache hit): through the Settler when
// there is one (off the request path), else inline.
func (p *Proxy) settle(r *http.Request, info *llmproxy.RequestInfo, res ratelimit.Reservation) {
	used := info.Usage.TotalTokens > 0 && info.CacheStatus != llmproxy.CacheHit
	if p.settler != nil {
		if used {
			p.settler.Settle(res, info.Usage.TotalTokens)
		} else {
			p.settler.Release(res)
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 2*time.Second)
	defer cancel()
	var err error
	if used {
		err = res.Settle(ctx, info.Usage.TotalTokens)
	} else {
		err = res.Release(ctx)
	}
	if err != nil {
		p.log.LogAttrs(ctx, slog.LevelWarn, "settle rate-limit reservation",
			slog.String("request_id", info.RequestID), slog.String("error", err.Error()))
	}
}

// computeUsage fills info.Usage: reported by upstream, else estimated for
// successful (or aborted) model answers, else none.
func (p *Proxy) computeUsage(st *state) {
	info := st.info
	info.Usage = llmproxy.Usage{Source: llmproxy.UsageNone}
	if !st.responded || info.CacheStatus == llmproxy.CacheHit {
		return
	}
	if s := st.stream; s != nil {
		if u, ok := s.acc.Reported(); ok {
			info.Usage = u
			return
		}
		text, extra := s.acc.Text()
		if text == "" && extra == 0 {
			return
		}
		prompt := st.promptEst
		if prompt == 0 {
			prompt = p.counter.PromptTokensOf(info.Model, st.fields)
		}
		info.Usage = p.counter.Estimate(info.Model, prompt, text, extra)
		return
	}
	c := st.capture
	if c == nil || c.usageOverflow || info.Status >= 300 || len(c.usageBuf) == 0 {
		return
	}
	u, text, ok := usage.FromJSON(c.usageBuf)
	if ok {
		info.Usage = u
		return
	}
	if text == "" {
		return
	}
	prompt := st.promptEst
	if prompt == 0 {
		prompt = p.counter.PromptTokensOf(info.Model, st.fields)
	}
	info.Usage = p.counter.Estimate(info.Model, prompt, text, 0)
}

func bounded(b []byte, limit int64) ([]byte, bool) {
	if int64(len(b)) <= limit {
		return bytes.Clone(b), false
	}
	return bytes.Clone(b[:limit]), true
}

// respWriter records the status, the time of the first body byte and keeps
// Flush and Unwrap working for the reverse proxy.
type respWriter struct {
	http.ResponseWriter
	start     time.Time
	status    int
	firstByte time.Time
	bytes     int64
}

func (w *respWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *respWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.firstByte.IsZero() && len(b) > 0 {
		w.firstByte = time.Now()
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *respWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok { // the common case, without a controller per flush
		f.Flush()
		return
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// flushWhole sends an answer of known length once all of it is written, so
// that the client has it before the bookkeeping that follows (usage,
// settlement, metrics, the event, the access log): net/http would keep it
// in its buffer until the handler returns. A chunked answer is complete
// only with the terminator net/http writes then, so flushing it early
// would cost a write and gain nothing.
func (w *respWriter) flushWhole() {
	if w.status == 0 {
		return
	}
	cl := w.Header().Get("Content-Length")
	if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n == w.bytes && n > 0 {
		w.Flush()
	}
}

func (w *respWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
