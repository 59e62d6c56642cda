package httpcache

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llm-proxy/llm-proxy/internal/testenv"
)

// backendKind builds a backend for a test. clk is nil for Redis (real time).
type backendKind struct {
	name string
	new  func(t *testing.T, clk *testenv.Clock) Backend
}

var backends = []backendKind{
	{"memory", func(t *testing.T, clk *testenv.Clock) Backend { return NewMemory(64<<20, clk.Now) }},
	{"redis", func(t *testing.T, _ *testenv.Clock) Backend {
		client, prefix := testenv.Redis(t)
		return NewRedis(client, prefix+"cache:")
	}},
}

// forEachBackend runs f as a parallel subtest per backend.
func forEachBackend(t *testing.T, f func(t *testing.T, bk backendKind)) {
	t.Helper()
	for _, bk := range backends {
		t.Run(bk.name, func(t *testing.T) {
			t.Parallel()
			f(t, bk)
		})
	}
}

// upstream is a test OpenAI-like server that counts requests.
type upstream struct {
	srv     *httptest.Server
	calls   atomic.Int64
	handler atomic.Pointer[http.HandlerFunc]
}

// defaultUpstream answers JSON naming the call number and a digest of the
// body, with the request-specific headers a real upstream sends.
func defaultUpstream(u *upstream) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		n := u.calls.Load()
		body, _ := io.ReadAll(r.Body)
		sum := sha256.Sum256(body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Request-ID", fmt.Sprintf("upstream-%d", n))
		w.Header().Set("X-Ratelimit-Remaining-Requests", fmt.Sprint(100-n))
		w.Header().Set("Set-Cookie", "__cf_bm=secret; Path=/")
		w.Header().Set("Openai-Model", "gpt-test")
		if v := r.Header.Get("X-Test-Cache-Control"); v != "" {
			w.Header().Set("Cache-Control", v)
		}
		if v := r.Header.Get("X-Test-Vary"); v != "" {
			w.Header().Set("Vary", v)
		}
		status := http.StatusOK
		if v := r.Header.Get("X-Test-Status"); v != "" {
			fmt.Sscan(v, &status)
		}
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"call":%d,"body":%q,"variant":%q}`, n, hex.EncodeToString(sum[:4]), r.Header.Get("X-Variant"))
	}
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{}
	d := defaultUpstream(u)
	u.handler.Store(&d)
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.calls.Add(1)
		(*u.handler.Load())(w, r)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) set(h http.HandlerFunc) { u.handler.Store(&h) }

// harness is the cache in front of a reverse proxy to the upstream, called
// by an outer layer that plays the proxy's part: request id (from X-Req) and
// CORS headers, and the cache's Request from the test headers X-Project (none:
// no project) and X-Stream.
type harness struct {
	t     *testing.T
	c     *Cache
	up    *upstream
	h     http.Handler // serve, for real HTTP
	rp    http.Handler
	clock *testenv.Clock
}

func newHarness(t *testing.T, bk backendKind, opts Options) *harness {
	t.Helper()
	clk := testenv.NewClock(time.Time{})
	if bk.name == "memory" && opts.Now == nil {
		opts.Now = clk.Now
	}
	return newHarnessWith(t, bk.new(t, clk), opts, clk)
}

func newHarnessWith(t *testing.T, b Backend, opts Options, clk *testenv.Clock) *harness {
	up := newUpstream(t)
	target, _ := url.Parse(up.srv.URL)
	rp := &httputil.ReverseProxy{
		Rewrite:       func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		FlushInterval: -1,
		ErrorLog:      nil,
	}
	h := &harness{t: t, c: New(b, opts, nil), up: up, rp: rp, clock: clk}
	h.h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.serve(w, r) })
	return h
}

// serve is the outer layer: it returns the cache status Serve reported.
func (h *harness) serve(w http.ResponseWriter, r *http.Request) string {
	w.Header().Set("X-Request-ID", "proxy-"+r.Header.Get("X-Req"))
	if id := r.Header.Get("X-Req"); id != "" {
		w.Header().Set("X-Client-Request-Id", "client-"+id)
	}
	if o := r.Header.Get("Origin"); o != "" {
		w.Header().Set("Access-Control-Allow-Origin", o)
		w.Header().Add("Vary", "Origin")
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		h.t.Errorf("read request body: %v", err)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	req := Request{ProjectID: r.Header.Get("X-Project"), Stream: r.Header.Get("X-Stream") != "", Body: body}
	return h.c.Serve(w, r, req, h.upstream)
}

// upstream is the Upstream of the harness: the reverse proxy, reporting a
// complete answer unless the request says X-Test-Incomplete (as the proxy
// does when it saw upstream fail).
func (h *harness) upstream(w http.ResponseWriter, r *http.Request) bool {
	h.rp.ServeHTTP(w, r)
	return r.Header.Get("X-Test-Incomplete") == ""
}

// req describes one client request.
type req struct {
	project string
	method  string
	path    string
	body    string
	stream  bool
	header  map[string]string
}

// request builds rq; project "-" is a request without a project.
func (h *harness) request(rq req) *http.Request {
	if rq.method == "" {
		rq.method = http.MethodPost
	}
	if rq.path == "" {
		rq.path = "/v1/chat/completions"
	}
	if rq.project == "" {
		rq.project = "proj-a"
	}
	r := httptest.NewRequest(rq.method, rq.path, strings.NewReader(rq.body))
	if rq.body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	for k, v := range rq.header {
		r.Header.Set(k, v)
	}
	if rq.project != "-" {
		r.Header.Set("X-Project", rq.project)
	}
	if rq.stream {
		r.Header.Set("X-Stream", "1")
	}
	return r
}

// do serves rq through the harness synchronously (the store happens before
// it returns) and returns the response and the cache status.
func (h *harness) do(rq req) (*httptest.ResponseRecorder, string) {
	h.t.Helper()
	w := httptest.NewRecorder()
	status := h.serve(w, h.request(rq))
	return w, status
}

// optIn is the client opt-in header of the original.
var optIn = map[string]string{"Cache-Control": "public, max-age=60"}

func withHeaders(base map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// expectStatus checks the cache status of a response: its X-PROXY-CACHE
// header and what Serve returned.
func expectStatus(t *testing.T, w *httptest.ResponseRecorder, status, want string) {
	t.Helper()
	if got := w.Header().Get(HeaderProxyCache); got != want {
		t.Fatalf("X-PROXY-CACHE = %q, want %q (Cache-Status %q, status %d, body %s)", got, want, w.Header().Get(HeaderCacheStatus), w.Code, w.Body)
	}
	if status != want {
		t.Fatalf("Serve returned %q, want %q", status, want)
	}
}

func (h *harness) expectCalls(want int64) {
	h.t.Helper()
	if got := h.up.calls.Load(); got != want {
		h.t.Fatalf("upstream calls = %d, want %d", got, want)
	}
}

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
