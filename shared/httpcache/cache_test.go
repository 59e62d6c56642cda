package httpcache

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llm-proxy/llm-proxy/internal/testenv"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

const chatBody = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"temperature":0.5}`

func TestHitNeverReachesUpstream(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backendKind) {
		h := newHarness(t, bk, Options{})
		w1, i1 := h.do(req{body: chatBody, header: withHeaders(optIn, "X-Req", "first")})
		expectStatus(t, w1, i1, llmproxy.CacheStored)
		if got := w1.Header().Get(HeaderCacheStatus); got != "llm-proxy; fwd=uri-miss; stored" {
			t.Fatalf("Cache-Status on store = %q", got)
		}
		for i := range 5 {
			w, info := h.do(req{body: chatBody, header: withHeaders(optIn, "X-Req", "second")})
			expectStatus(t, w, info, llmproxy.CacheHit)
			if w.Body.String() != w1.Body.String() {
				t.Fatalf("hit %d body %q, want %q", i, w.Body, w1.Body)
			}
			if !strings.HasPrefix(w.Header().Get(HeaderCacheStatus), "llm-proxy; hit; ttl=") {
				t.Fatalf("Cache-Status on hit = %q", w.Header().Get(HeaderCacheStatus))
			}
			// Request-specific headers are the proxy's, never replayed.
			if got := w.Header().Get("X-Request-ID"); got != "proxy-second" {
				t.Fatalf("X-Request-ID on hit = %q", got)
			}
			if got := w.Header().Get("X-Client-Request-Id"); got != "client-second" {
				t.Fatalf("X-Client-Request-Id on hit = %q, want this client's", got)
			}
			for _, hd := range []string{"Set-Cookie", "X-Ratelimit-Remaining-Requests", "Date"} {
				if v := w.Header().Get(hd); v != "" {
					t.Fatalf("hit replays %s: %q", hd, v)
				}
			}
			if w.Header().Get("Openai-Model") != "gpt-test" || w.Header().Get("Content-Type") != "application/json" {
				t.Fatalf("hit lost response headers: %v", w.Header())
			}
			if w.Header().Get(HeaderCacheKey) != "" {
				t.Fatal("cache key exposed without debug")
			}
		}
		h.expectCalls(1)
		if s := h.c.Stats(); s.Hits != 5 || s.Misses != 1 || s.Stores != 1 {
			t.Fatalf("stats = %+v", s)
		}
	})
}

func TestCrossProjectIsolation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backendKind) {
		h := newHarness(t, bk, Options{})
		wa, _ := h.do(req{project: "proj-a", body: chatBody, header: optIn})
		wb, ib := h.do(req{project: "proj-b", body: chatBody, header: optIn})
		expectStatus(t, wb, ib, llmproxy.CacheStored)
		h.expectCalls(2)
		if wa.Body.String() == wb.Body.String() {
			t.Fatal("project b got project a's answer")
		}
		// each project then hits its own entry
		w, i := h.do(req{project: "proj-b", body: chatBody, header: optIn})
		expectStatus(t, w, i, llmproxy.CacheHit)
		if w.Body.String() != wb.Body.String() {
			t.Fatal("project b hit the wrong entry")
		}
		h.expectCalls(2)
	})
}

func TestBodyCanonicalisation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backendKind) {
		h := newHarness(t, bk, Options{})
		h.do(req{body: chatBody, header: optIn})
		same := []string{
			`{"temperature":0.5,"messages":[{"content":"hi","role":"user"}],"model":"gpt-4o-mini"}`,
			"{\n  \"model\" : \"gpt-4o-mini\",\n\t\"messages\":[ {\"role\":\"user\",\"content\":\"hi\"} ],\n\"temperature\":5e-1 }\n",
			`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"temperature":0.50}`,
		}
		for _, b := range same {
			w, i := h.do(req{body: b, header: optIn})
			expectStatus(t, w, i, llmproxy.CacheHit)
		}
		h.expectCalls(1)
		different := []string{
			`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"temperature":0.6}`,
			`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"temperature":0.5}`,
			`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}],"temperature":0.5}`,
			`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"temperature":0.5,"seed":1}`,
			`{"model":"gpt-4o-mini","messages":[{"content":"hi","role":"user"},{"role":"user","content":"hi"}],"temperature":0.5}`,
		}
		for n, b := range different {
			w, i := h.do(req{body: b, header: optIn})
			expectStatus(t, w, i, llmproxy.CacheStored)
			h.expectCalls(int64(n + 2))
		}
		// the query and the path are part of the key too
		w, i := h.do(req{path: "/v1/chat/completions?x=1", body: chatBody, header: optIn})
		expectStatus(t, w, i, llmproxy.CacheStored)
		w, i = h.do(req{path: "/v1/completions", body: chatBody, header: optIn})
		expectStatus(t, w, i, llmproxy.CacheStored)
	})
}

func TestVary(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backendKind) {
		h := newHarness(t, bk, Options{})
		hdr := func(v string) map[string]string {
			return withHeaders(optIn, "X-Test-Vary", "X-Variant", "X-Variant", v)
		}
		w1, _ := h.do(req{body: chatBody, header: hdr("one")})
		w2, i2 := h.do(req{body: chatBody, header: hdr("two")})
		expectStatus(t, w2, i2, llmproxy.CacheStored)
		h.expectCalls(2)
		if w1.Body.String() == w2.Body.String() {
			t.Fatal("different variants share a body")
		}
		for v, want := range map[string]string{"one": w1.Body.String(), "two": w2.Body.String()} {
			w, i := h.do(req{body: chatBody, header: hdr(v)})
			expectStatus(t, w, i, llmproxy.CacheHit)
			if w.Body.String() != want {
				t.Fatalf("variant %s got %s", v, w.Body)
			}
			if !strings.Contains(w.Header().Get("Vary"), "X-Variant") {
				t.Fatalf("hit lost Vary: %q", w.Header().Values("Vary"))
			}
		}
		w, _ := h.do(req{body: chatBody, header: hdr("three")})
		if !strings.Contains(w.Header().Get(HeaderCacheStatus), "fwd=vary-miss") {
			t.Fatalf("new variant: Cache-Status %q", w.Header().Get(HeaderCacheStatus))
		}
		h.expectCalls(3)
	})
}

func TestOriginDoesNotPreventHits(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backendKind) {
		h := newHarness(t, bk, Options{})
		w1, _ := h.do(req{body: chatBody, header: withHeaders(optIn, "Origin", "https://a.example")})
		w2, i2 := h.do(req{body: chatBody, header: withHeaders(optIn, "Origin", "https://b.example")})
		expectStatus(t, w2, i2, llmproxy.CacheHit)
		if w2.Body.String() != w1.Body.String() {
			t.Fatal("different body")
		}
		if got := w2.Header().Get("Access-Control-Allow-Origin"); got != "https://b.example" {
			t.Fatalf("hit replayed CORS header %q", got)
		}
		w3, i3 := h.do(req{body: chatBody, header: optIn}) // no Origin at all
		expectStatus(t, w3, i3, llmproxy.CacheHit)
		h.expectCalls(1)
	})
}

func TestRules(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backendKind) {
		type step struct {
			rq   req
			want string
		}
		cases := []struct {
			name  string
			opts  Options
			steps []step
			calls int64
		}{
			{"POST without opt-in bypasses", Options{}, []step{
				{req{body: chatBody}, llmproxy.CacheBypass},
				{req{body: chatBody}, llmproxy.CacheBypass},
			}, 2},
			{"request no-store bypasses", Options{}, []step{
				{req{body: chatBody, header: optIn}, llmproxy.CacheStored},
				{req{body: chatBody, header: map[string]string{"Cache-Control": "no-store"}}, llmproxy.CacheBypass},
			}, 2},
			{"request private bypasses", Options{}, []step{
				{req{body: chatBody, header: map[string]string{"Cache-Control": "public, private, max-age=60"}}, llmproxy.CacheBypass},
				{req{body: chatBody, header: optIn}, llmproxy.CacheStored},
			}, 2},
			{"request no-cache revalidates and refreshes", Options{}, []step{
				{req{body: chatBody, header: optIn}, llmproxy.CacheStored},
				{req{body: chatBody, header: map[string]string{"Cache-Control": "public, max-age=60, no-cache"}}, llmproxy.CacheStored},
				{req{body: chatBody, header: optIn}, llmproxy.CacheHit},
			}, 2},
			{"response no-store not stored", Options{}, []step{
				{req{body: chatBody, header: withHeaders(optIn, "X-Test-Cache-Control", "no-store")}, llmproxy.CacheMiss},
				{req{body: chatBody, header: optIn}, llmproxy.CacheStored},
			}, 2},
			{"response private not stored", Options{}, []step{
				{req{body: chatBody, header: withHeaders(optIn, "X-Test-Cache-Control", "private, max-age=60")}, llmproxy.CacheMiss},
				{req{body: chatBody, header: optIn}, llmproxy.CacheStored},
			}, 2},
			{"5xx not cached", Options{}, []step{
				{req{body: chatBody, header: withHeaders(optIn, "X-Test-Status", "500")}, llmproxy.CacheMiss},
				{req{body: chatBody, header: withHeaders(optIn, "X-Test-Status", "503")}, llmproxy.CacheMiss},
				{req{body: chatBody, header: withHeaders(optIn, "X-Test-Status", "429")}, llmproxy.CacheMiss},
				{req{body: chatBody, header: optIn}, llmproxy.CacheStored},
			}, 4},
			{"GET without freshness not stored", Options{}, []step{
				{req{method: http.MethodGet, path: "/v1/models"}, llmproxy.CacheMiss},
				{req{method: http.MethodGet, path: "/v1/models"}, llmproxy.CacheMiss},
			}, 2},
			{"GET with upstream max-age stored, HEAD served from it", Options{}, []step{
				{req{method: http.MethodGet, path: "/v1/models", header: map[string]string{"X-Test-Cache-Control": "max-age=60"}}, llmproxy.CacheStored},
				{req{method: http.MethodGet, path: "/v1/models"}, llmproxy.CacheHit},
				{req{method: http.MethodHead, path: "/v1/models"}, llmproxy.CacheHit},
			}, 1},
			{"operator-enabled path caches POST without opt-in", Options{Paths: []string{"/v1/embeddings"}}, []step{
				{req{path: "/v1/embeddings", body: `{"input":"x","model":"e"}`}, llmproxy.CacheStored},
				{req{path: "/v1/embeddings", body: `{"model":"e","input":"x"}`}, llmproxy.CacheHit},
				{req{path: "/v1/chat/completions", body: chatBody}, llmproxy.CacheBypass},
			}, 2},
			{"other methods bypass", Options{}, []step{
				{req{method: http.MethodDelete, path: "/v1/files/f1", header: optIn}, llmproxy.CacheBypass},
			}, 1},
			{"no project bypasses", Options{}, []step{
				{req{project: "-", body: chatBody, header: optIn}, llmproxy.CacheBypass},
			}, 1},
			{"stream and non-stream never share", Options{}, []step{
				{req{body: chatBody, header: optIn}, llmproxy.CacheStored},
				{req{body: chatBody, header: optIn, stream: true}, llmproxy.CacheMiss}, // upstream answers JSON: mismatch
				{req{body: chatBody, header: optIn}, llmproxy.CacheHit},
			}, 2},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				h := newHarness(t, bk, tc.opts)
				for i, s := range tc.steps {
					w, status := h.do(s.rq)
					if got := w.Header().Get(HeaderProxyCache); got != s.want {
						t.Fatalf("step %d: X-PROXY-CACHE %q, want %q (Cache-Status %q)", i, got, s.want, w.Header().Get(HeaderCacheStatus))
					}
					if status != s.want {
						t.Fatalf("step %d: Serve returned %q, want %q", i, status, s.want)
					}
				}
				h.expectCalls(tc.calls)
			})
		}
	})
}

func TestMaxAgeOfRequestLimitsAge(t *testing.T) {
	h := newHarness(t, backends[0], Options{})
	h.do(req{body: chatBody, header: map[string]string{"Cache-Control": "public, max-age=600"}})
	h.clock.Advance(2 * time.Minute)
	w, i := h.do(req{body: chatBody, header: map[string]string{"Cache-Control": "public, max-age=600"}})
	expectStatus(t, w, i, llmproxy.CacheHit)
	if w.Header().Get("Age") != "120" {
		t.Fatalf("Age = %q", w.Header().Get("Age"))
	}
	w, i = h.do(req{body: chatBody, header: map[string]string{"Cache-Control": "public, max-age=60"}})
	expectStatus(t, w, i, llmproxy.CacheStored) // too old for this client: refetched
	h.expectCalls(2)
}

func TestTTLExpiry(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, backends[0], Options{})
		ttl := map[string]string{"Cache-Control": "public, max-age=30"}
		h.do(req{body: chatBody, header: ttl})
		h.clock.Advance(29 * time.Second)
		w, i := h.do(req{body: chatBody, header: ttl})
		expectStatus(t, w, i, llmproxy.CacheHit)
		h.clock.Advance(time.Second)
		w, i = h.do(req{body: chatBody, header: ttl})
		expectStatus(t, w, i, llmproxy.CacheStored)
		h.expectCalls(2)
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, backends[1], Options{})
		ttl := map[string]string{"Cache-Control": "public, max-age=1"}
		h.do(req{body: chatBody, header: ttl})
		w, i := h.do(req{body: chatBody, header: ttl})
		expectStatus(t, w, i, llmproxy.CacheHit)
		eventually(t, "entry to expire", func() bool {
			w, _ := h.do(req{body: chatBody, header: ttl})
			return w.Header().Get(HeaderProxyCache) != llmproxy.CacheHit
		})
	})
}

func TestMaxTTLCaps(t *testing.T) {
	h := newHarness(t, backends[0], Options{MaxTTL: time.Minute})
	long := map[string]string{"Cache-Control": "public, max-age=86400"}
	h.do(req{body: chatBody, header: long})
	h.clock.Advance(61 * time.Second)
	w, i := h.do(req{body: chatBody, header: long})
	expectStatus(t, w, i, llmproxy.CacheStored)
}

func TestPurge(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backendKind) {
		other := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"other"}]}`
		fill := func(h *harness) {
			h.do(req{project: "p1", body: chatBody, header: optIn})
			h.do(req{project: "p1", body: chatBody, header: optIn, stream: true}) // stream mismatch: not stored
			h.do(req{project: "p1", body: chatBody, header: withHeaders(optIn, "Accept-Encoding", "identity")})
			h.do(req{project: "p1", body: other, header: optIn})
			h.do(req{project: "p2", body: chatBody, header: optIn})
		}
		hit := func(h *harness, project, body string) bool {
			w, _ := h.do(req{project: project, body: body, header: optIn})
			return w.Header().Get(HeaderProxyCache) == llmproxy.CacheHit
		}
		t.Run("exact", func(t *testing.T) {
			h := newHarness(t, bk, Options{})
			fill(h)
			// reordered keys: the same request
			n, err := h.c.Purge(context.Background(), PurgeRequest{ProjectID: "p1", Method: "post", Path: "/v1/chat/completions",
				Body: []byte(`{"temperature":0.5,"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`)})
			if err != nil || n != 2 { // both Accept-Encoding variants
				t.Fatalf("exact purge = %d, %v; want 2", n, err)
			}
			if hit(h, "p1", chatBody) || !hit(h, "p1", other) || !hit(h, "p2", chatBody) {
				t.Fatal("exact purge deleted the wrong entries")
			}
		})
		t.Run("project", func(t *testing.T) {
			h := newHarness(t, bk, Options{})
			fill(h)
			n, err := h.c.Purge(context.Background(), PurgeRequest{ProjectID: "p1"})
			if err != nil || n != 3 {
				t.Fatalf("project purge = %d, %v; want 3", n, err)
			}
			if hit(h, "p1", chatBody) || hit(h, "p1", other) || !hit(h, "p2", chatBody) {
				t.Fatal("project purge deleted the wrong entries")
			}
		})
		t.Run("all", func(t *testing.T) {
			h := newHarness(t, bk, Options{})
			fill(h)
			n, err := h.c.Purge(context.Background(), PurgeRequest{All: true})
			if err != nil || n != 4 {
				t.Fatalf("purge all = %d, %v; want 4", n, err)
			}
			if hit(h, "p1", other) || hit(h, "p2", chatBody) {
				t.Fatal("purge all left entries")
			}
		})
		t.Run("invalid", func(t *testing.T) {
			h := newHarness(t, bk, Options{})
			for _, pr := range []PurgeRequest{{}, {Method: "POST", Path: "/v1/x"}, {ProjectID: "p", Method: "POST"}, {ProjectID: "p", Method: "GET", Path: "v1"}} {
				if _, err := h.c.Purge(context.Background(), pr); !errors.Is(err, llmproxy.ErrInvalid) {
					t.Fatalf("Purge(%+v) err = %v, want ErrInvalid", pr, err)
				}
			}
		})
	})
}

func TestDebugHeaders(t *testing.T) {
	h := newHarness(t, backends[0], Options{Debug: true})
	w, _ := h.do(req{body: chatBody, header: optIn})
	key := w.Header().Get(HeaderCacheKey)
	if key == "" || !strings.Contains(w.Header().Get(HeaderCacheStatus), `key="`+key+`"`) {
		t.Fatalf("debug headers missing: %v", w.Header())
	}
	w, _ = h.do(req{body: chatBody, header: optIn})
	if w.Header().Get(HeaderCacheKey) != key {
		t.Fatalf("hit key %q, stored key %q", w.Header().Get(HeaderCacheKey), key)
	}
	w, _ = h.do(req{body: chatBody})
	if got := w.Header().Get(HeaderCacheStatus); got != "llm-proxy; fwd=bypass; detail=not-opted-in" {
		t.Fatalf("bypass Cache-Status %q", got)
	}
}

// failing is a backend whose every call fails.
type failing struct{}

func (failing) Get(context.Context, ...string) ([][]byte, error) { return nil, errors.New("boom") }
func (failing) Set(context.Context, string, []byte, time.Duration) error {
	return errors.New("boom")
}
func (failing) DeletePrefix(context.Context, string) (int, error) { return 0, errors.New("boom") }

// hanging is a backend whose calls return only when their context ends
// (a Redis that stopped answering): the cache's Timeout must end them.
type hanging struct{}

func (hanging) Get(ctx context.Context, _ ...string) ([][]byte, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}
func (hanging) Set(ctx context.Context, _ string, _ []byte, _ time.Duration) error {
	<-ctx.Done()
	return ctx.Err()
}
func (hanging) DeletePrefix(ctx context.Context, _ string) (int, error) {
	<-ctx.Done()
	return 0, ctx.Err()
}

func TestBrokenBackendIsAMiss(t *testing.T) {
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { dead.Close() })
	for name, b := range map[string]Backend{"failing": failing{}, "dead-redis": NewRedis(dead, "x:"), "hanging": hanging{}} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newHarnessWith(t, b, Options{Timeout: 50 * time.Millisecond}, testenv.NewClock(time.Time{}))
			for range 2 {
				w, i := h.do(req{body: chatBody, header: optIn})
				if w.Code != http.StatusOK {
					t.Fatalf("status %d", w.Code)
				}
				if i != llmproxy.CacheMiss {
					t.Fatalf("cache status %q", i)
				}
			}
			h.expectCalls(2)
			if h.c.Stats().Errors < 2 {
				t.Fatalf("errors not counted: %+v", h.c.Stats())
			}
			// A purge is bounded by its caller (the management request).
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			if _, err := h.c.Purge(ctx, PurgeRequest{All: true}); !errors.Is(err, llmproxy.ErrUnavailable) {
				t.Fatalf("purge err = %v, want ErrUnavailable", err)
			}
		})
	}
}

// TestIncompleteUpstreamNotStored: an answer its Upstream reports as
// incomplete (the proxy saw upstream fail) is a miss and never stored,
// although its status and headers would allow it.
func TestIncompleteUpstreamNotStored(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backendKind) {
		h := newHarness(t, bk, Options{})
		w, status := h.do(req{body: chatBody, header: withHeaders(optIn, "X-Test-Incomplete", "1")})
		if w.Code != http.StatusOK {
			t.Fatalf("status %d", w.Code)
		}
		if status != llmproxy.CacheMiss {
			t.Fatalf("incomplete answer: Serve returned %q, want %q", status, llmproxy.CacheMiss)
		}
		w, status = h.do(req{body: chatBody, header: optIn})
		expectStatus(t, w, status, llmproxy.CacheStored) // not a hit: nothing was stored
		w, status = h.do(req{body: chatBody, header: optIn})
		expectStatus(t, w, status, llmproxy.CacheHit)
		h.expectCalls(2)
	})
}

func TestNilCacheIsDisabled(t *testing.T) {
	var c *Cache
	called := false
	next := func(http.ResponseWriter, *http.Request) bool { called = true; return true }
	if status := c.Serve(httptest.NewRecorder(), httptest.NewRequest("GET", "/v1/models", nil), Request{ProjectID: "p"}, next); status != "" || !called {
		t.Fatalf("nil cache: status %q, upstream called %v", status, called)
	}
	if _, err := c.Purge(context.Background(), PurgeRequest{All: true}); !errors.Is(err, llmproxy.ErrInvalid) {
		t.Fatalf("purge on disabled cache: %v", err)
	}
	if c.Collectors() != nil || c.Stats() != (Stats{}) {
		t.Fatal("nil cache reports metrics")
	}
}
