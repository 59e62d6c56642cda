package httpcache

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/sse"
)

// DefaultKeyHeaders are request headers that are part of every key, whatever
// the response's Vary says, because they change OpenAI's answer or its
// encoding.
var DefaultKeyHeaders = []string{"Accept-Encoding", "OpenAI-Beta", "OpenAI-Organization", "OpenAI-Project"}

// Options tune a Cache. Zero values take the documented defaults.
type Options struct {
	// DefaultTTL is the lifetime of entries stored for operator-enabled
	// Paths (default 300s).
	DefaultTTL time.Duration
	// MaxTTL caps every entry's lifetime (default 24h).
	MaxTTL time.Duration
	// MaxObjectBytes is the largest body stored, streams included
	// (default 1 MiB). Larger responses pass through and are not stored.
	MaxObjectBytes int64
	// Paths are request paths (exact, e.g. "/v1/embeddings") whose responses
	// are cached for DefaultTTL without client opt-in, POST included.
	Paths []string
	// SkipStreams disables storing streamed (SSE) responses.
	SkipStreams bool
	// Debug adds the cache key (X-PROXY-CACHE-KEY, Cache-Status key=) and the
	// reason a response was not stored (Cache-Status detail=) to responses.
	Debug bool
	// KeyHeaders are request headers always part of the key (default
	// DefaultKeyHeaders).
	KeyHeaders []string
	// Timeout bounds each backend call (default 1s); a slow backend is a miss.
	Timeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Name is the cache's name in Cache-Status (default "llm-proxy").
	Name string
}

func (o Options) withDefaults() Options {
	if o.DefaultTTL <= 0 {
		o.DefaultTTL = 300 * time.Second
	}
	if o.MaxTTL <= 0 {
		o.MaxTTL = 24 * time.Hour
	}
	if o.MaxObjectBytes <= 0 {
		o.MaxObjectBytes = 1 << 20
	}
	if o.KeyHeaders == nil {
		o.KeyHeaders = DefaultKeyHeaders
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Name == "" {
		o.Name = "llm-proxy"
	}
	return o
}

// Response headers set by the cache.
const (
	HeaderCacheStatus = "Cache-Status"      // RFC 9211
	HeaderProxyCache  = "X-PROXY-CACHE"     // hit|miss|stored|bypass (the original's)
	HeaderCacheKey    = "X-PROXY-CACHE-KEY" // only with Options.Debug
)

// Cache is the response cache. A nil *Cache is a disabled cache: Serve
// calls next and reports no status.
type Cache struct {
	backend    Backend
	opts       Options
	log        *slog.Logger
	paths      map[string]bool
	keyHeaders []string
	closer     io.Closer
	bounded    bool // backend calls are bounded by opts.Timeout (the backend does I/O)

	hits, misses, stores, bypasses, errs atomic.Uint64
	lastErrLog                           atomic.Int64
}

// New returns a cache over backend. log may be nil (discard).
func New(backend Backend, opts Options, log *slog.Logger) *Cache {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts = opts.withDefaults()
	c := &Cache{backend: backend, opts: opts, log: log, paths: map[string]bool{}, keyHeaders: canonicalNames(opts.KeyHeaders)}
	_, local := backend.(inProcess)
	c.bounded = !local
	for _, p := range opts.Paths {
		c.paths[p] = true
	}
	return c
}

// Close releases what Open created (the Redis client); it is a no-op for a
// Cache built with New.
func (c *Cache) Close() error {
	if c == nil || c.closer == nil {
		return nil
	}
	return c.closer.Close()
}

// Request is what the cache needs to know of a request beyond the HTTP
// request itself (whose method, path, query and headers it reads).
type Request struct {
	// ProjectID scopes the key; without one the request bypasses the cache.
	ProjectID string
	// Stream: the client asked for a stream. Streamed and plain answers to
	// the same request are cached apart.
	Stream bool
	// Body is the whole request body, as upstream receives it (part of the
	// key).
	Body []byte
}

// Upstream answers a request the cache does not: it writes the response to
// w and reports whether that is upstream's complete answer. false (an
// upstream failure or interrupted stream the caller saw) keeps the response
// out of the cache, whatever its status says.
type Upstream func(w http.ResponseWriter, r *http.Request) (complete bool)

// Serve answers r from the cache, or through next, storing the answer when
// it may be, and returns the request's cache status: llmproxy.CacheHit,
// CacheMiss, CacheStored or CacheBypass (also sent as X-PROXY-CACHE). A nil
// Cache calls next and returns "".
func (c *Cache) Serve(w http.ResponseWriter, r *http.Request, req Request, next Upstream) string {
	if c == nil {
		next(w, r)
		return ""
	}
	p := c.requestPolicy(r, req.ProjectID)
	if p.bypass != "" {
		c.serveBypass(w, r, next, p.bypass)
		return llmproxy.CacheBypass
	}
	base := baseKey(requestScope(req.ProjectID, r.Method, r.URL.Path, r.URL.RawQuery, req.Body), req.Stream)

	fwd := "request" // the client asked to revalidate
	if p.lookup {
		e, key, f := c.lookup(r, base, req.Stream, p)
		if e != nil {
			c.hits.Add(1)
			c.replay(w, r, e, key)
			return llmproxy.CacheHit
		}
		fwd = f
	}
	c.misses.Add(1)
	cw := &captureWriter{ResponseWriter: w, c: c, r: r, pol: p, base: base, fwd: fwd, wantStream: req.Stream}
	complete := next(cw, r)
	// Reached only when next returned normally (an aborted copy panics
	// with http.ErrAbortHandler and is never stored).
	if complete && c.finish(r, cw) {
		return llmproxy.CacheStored
	}
	return llmproxy.CacheMiss
}

func (c *Cache) serveBypass(w http.ResponseWriter, r *http.Request, next Upstream, reason string) {
	c.bypasses.Add(1)
	h := w.Header()
	status := c.opts.Name + "; fwd=bypass"
	if c.opts.Debug {
		status += "; detail=" + reason
	}
	h.Set(HeaderCacheStatus, status)
	h.Set(HeaderProxyCache, llmproxy.CacheBypass)
	next(w, r)
}

// backendContext is ctx for a backend call: bounded by Options.Timeout
// unless the backend does no I/O.
func (c *Cache) backendContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if !c.bounded {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.opts.Timeout)
}

// lookup finds a fresh entry for r. On a miss fwd says why (RFC 9211 fwd).
func (c *Cache) lookup(r *http.Request, base string, stream bool, p reqPolicy) (e *entry, key, fwd string) {
	ctx, cancel := c.backendContext(r.Context())
	defer cancel()
	key = variantKey(base, c.keyHeaders, r)
	vals, err := c.backend.Get(ctx, base, key)
	if err != nil {
		c.backendError("lookup", err)
		return nil, "", "miss"
	}
	if vals[0] == nil {
		return nil, "", "uri-miss"
	}
	_, vr, err := decodeRecord(vals[0])
	if err != nil || vr == nil {
		c.backendError("decode vary record", errCorrupt)
		return nil, "", "miss"
	}
	raw := vals[1]
	if !slices.Equal(vr.Names, c.keyHeaders) {
		key = variantKey(base, vr.Names, r)
		vals, err = c.backend.Get(ctx, key)
		if err != nil {
			c.backendError("lookup", err)
			return nil, "", "miss"
		}
		raw = vals[0]
	}
	if raw == nil {
		return nil, "", "vary-miss"
	}
	e, _, err = decodeRecord(raw)
	if err != nil || e == nil {
		c.backendError("decode entry", errCorrupt)
		return nil, "", "miss"
	}
	now := c.opts.Now()
	if !now.Before(e.Expires) || e.Stream != stream {
		return nil, "", "stale"
	}
	if p.hasMaxAge && now.Sub(e.StoredAt) > p.maxAge {
		return nil, "", "stale"
	}
	return e, key, ""
}

// replay writes a stored response. Headers set by outer layers (request id,
// CORS) are kept; stored ones never include them.
func (c *Cache) replay(w http.ResponseWriter, r *http.Request, e *entry, key string) {
	h := w.Header()
	for k, vs := range e.Header {
		if k == "Vary" {
			for _, v := range vs {
				addVary(h, v)
			}
			continue
		}
		h[k] = slices.Clone(vs)
	}
	now := c.opts.Now()
	age := max(0, int64(now.Sub(e.StoredAt)/time.Second))
	h.Set("Age", strconv.FormatInt(age, 10))
	status := c.opts.Name + "; hit; ttl=" + strconv.FormatInt(int64(e.Expires.Sub(now)/time.Second), 10)
	if c.opts.Debug {
		status += "; key=" + strconv.Quote(key)
		h.Set(HeaderCacheKey, key)
	}
	h.Set(HeaderCacheStatus, status)
	h.Set(HeaderProxyCache, llmproxy.CacheHit)
	if !e.Stream {
		h.Set("Content-Length", strconv.Itoa(len(e.Body)))
	} else {
		h.Del("Content-Length")
	}
	w.WriteHeader(e.Status)
	if r.Method == http.MethodHead || len(e.Body) == 0 {
		return
	}
	if !e.Stream {
		_, _ = w.Write(e.Body)
		return
	}
	rc := http.NewResponseController(w)
	for ev := range sse.Events(e.Body) {
		if _, err := w.Write(ev); err != nil {
			return // client gone
		}
		_ = rc.Flush()
	}
}

func addVary(h http.Header, name string) {
	for _, v := range h.Values("Vary") {
		for _, n := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(n), name) {
				return
			}
		}
	}
	h.Add("Vary", name)
}

// finish stores the captured response when it is complete and storable.
func (c *Cache) finish(r *http.Request, cw *captureWriter) bool {
	if !cw.wroteHeader || !cw.storable || cw.failed {
		return false
	}
	if r.Context().Err() != nil { // client went away
		return false
	}
	body := cw.buf
	if cw.stream {
		if !streamFinished(r.URL.Path, body) {
			return false
		}
		body = stripComments(body)
	} else if cw.contentLength >= 0 && int64(len(body)) != cw.contentLength {
		return false
	}
	now := c.opts.Now()
	e := &entry{Status: cw.status, Stream: cw.stream, StoredAt: now, Expires: now.Add(cw.ttl), Header: cw.stored, Body: body}
	ctx, cancel := c.backendContext(context.WithoutCancel(r.Context()))
	defer cancel()
	// Vary record first, then the entry: a lookup that sees the record but
	// not yet the entry is a miss, never a wrong answer.
	vr := &varyRecord{Names: cw.names}
	if err := c.backend.Set(ctx, cw.base, vr.encode(), cw.ttl); err != nil {
		c.backendError("store", err)
		return false
	}
	if err := c.backend.Set(ctx, variantKey(cw.base, cw.names, r), e.encode(), cw.ttl); err != nil {
		c.backendError("store", err)
		return false
	}
	c.stores.Add(1)
	return true
}

// backendError counts a backend failure and logs it at most every 10 s.
func (c *Cache) backendError(op string, err error) {
	c.errs.Add(1)
	now := time.Now().UnixNano()
	last := c.lastErrLog.Load()
	if now-last < int64(10*time.Second) || !c.lastErrLog.CompareAndSwap(last, now) {
		return
	}
	c.log.Warn("http cache backend failed; treating as a miss", "op", op, "err", err, "errors_total", c.errs.Load())
}

// Purge deletes the entries req selects and returns how many responses were
// deleted. Invalid requests return an llmproxy.ErrInvalid *Error, backend
// failures an llmproxy.ErrUnavailable one.
func (c *Cache) Purge(ctx context.Context, req PurgeRequest) (int, error) {
	if c == nil {
		return 0, llmproxy.E(llmproxy.ErrInvalid, llmproxy.CodeInvalidRequest, "caching is disabled")
	}
	var prefix string
	switch {
	case req.All:
		prefix = ""
	case req.ProjectID == "":
		return 0, llmproxy.E(llmproxy.ErrInvalid, llmproxy.CodeInvalidRequest, "project_id is required unless all is true")
	case req.Method == "" && req.Path == "" && req.Query == "" && len(req.Body) == 0:
		prefix = projectScope(req.ProjectID)
	case req.Method == "" || req.Path == "":
		return 0, llmproxy.E(llmproxy.ErrInvalid, llmproxy.CodeInvalidRequest, "method and path are required to purge one request")
	case !strings.HasPrefix(req.Path, "/"):
		return 0, llmproxy.E(llmproxy.ErrInvalid, llmproxy.CodeInvalidRequest, "path must start with /")
	default:
		prefix = requestScope(req.ProjectID, strings.ToUpper(req.Method), req.Path, strings.TrimPrefix(req.Query, "?"), req.Body)
	}
	n, err := c.backend.DeletePrefix(ctx, prefix)
	if err != nil {
		c.errs.Add(1)
		return n, llmproxy.Wrap(llmproxy.ErrUnavailable, llmproxy.CodeUnavailable, "cache unavailable", err)
	}
	return n, nil
}

// captureWriter passes a miss through to the client and tees the body into
// a bounded buffer when the response may be stored.
type captureWriter struct {
	http.ResponseWriter
	c          *Cache
	r          *http.Request
	pol        reqPolicy
	base       string
	fwd        string
	wantStream bool

	wroteHeader   bool
	status        int
	storable      bool
	stream        bool
	failed        bool
	ttl           time.Duration
	names         []string
	stored        http.Header
	contentLength int64
	buf           []byte
}

func (cw *captureWriter) WriteHeader(code int) {
	if cw.wroteHeader {
		return
	}
	if code >= 100 && code < 200 { // informational: pass through
		cw.ResponseWriter.WriteHeader(code)
		return
	}
	cw.wroteHeader = true
	cw.status = code
	h := cw.ResponseWriter.Header()
	ttl, stream, reason := cw.c.responsePolicy(cw.pol, code, h, cw.wantStream)
	var key string
	if reason == "" {
		cw.storable, cw.ttl, cw.stream = true, ttl, stream
		cw.names = cw.c.varyNames(h)
		cw.stored = make(http.Header, len(h))
		for k, vs := range h {
			if storableHeader(k) {
				cw.stored[k] = slices.Clone(vs)
			}
		}
		if v := responseVary(h); len(v) > 0 {
			cw.stored["Vary"] = v
		}
		cw.contentLength = -1
		if n, err := strconv.ParseInt(h.Get("Content-Length"), 10, 64); err == nil && n >= 0 {
			cw.contentLength = n
			cw.buf = make([]byte, 0, n)
		}
		key = variantKey(cw.base, cw.names, cw.r)
	}
	status := cw.c.opts.Name + "; fwd=" + cw.fwd
	if cw.storable {
		// Stored once the response completes; an aborted or over-size
		// response is dropped instead (see finish).
		status += "; stored"
		h.Set(HeaderProxyCache, llmproxy.CacheStored)
	} else {
		h.Set(HeaderProxyCache, llmproxy.CacheMiss)
	}
	if cw.c.opts.Debug {
		if key != "" {
			status += "; key=" + strconv.Quote(key)
			h.Set(HeaderCacheKey, key)
		}
		if reason != "" {
			status += "; detail=" + reason
		}
	}
	h.Set(HeaderCacheStatus, status)
	cw.ResponseWriter.WriteHeader(code)
}

func (cw *captureWriter) Write(p []byte) (int, error) {
	if !cw.wroteHeader {
		cw.WriteHeader(http.StatusOK)
	}
	n, err := cw.ResponseWriter.Write(p)
	if err != nil {
		cw.failed = true
	}
	if cw.storable {
		if int64(len(cw.buf)+n) > cw.c.opts.MaxObjectBytes {
			cw.storable, cw.buf = false, nil // over the limit: drop, never truncate
		} else {
			cw.buf = append(cw.buf, p[:n]...)
		}
	}
	return n, err
}

// FlushError flushes the client connection (used by http.ResponseController).
func (cw *captureWriter) FlushError() error {
	if !cw.wroteHeader {
		cw.WriteHeader(http.StatusOK)
	}
	err := http.NewResponseController(cw.ResponseWriter).Flush()
	if err != nil && !errors.Is(err, http.ErrNotSupported) {
		cw.failed = true
	}
	return err
}

// Flush implements http.Flusher.
func (cw *captureWriter) Flush() { _ = cw.FlushError() }

// Unwrap lets http.ResponseController reach the underlying writer.
func (cw *captureWriter) Unwrap() http.ResponseWriter { return cw.ResponseWriter }
