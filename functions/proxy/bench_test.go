package proxy

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"

	"github.com/llm-proxy/llm-proxy/internal/mockopenai"
	"github.com/llm-proxy/llm-proxy/shared/apiconfig"
	"github.com/llm-proxy/llm-proxy/shared/httpcache"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/ratelimit"
	"github.com/llm-proxy/llm-proxy/shared/tokens"
	"github.com/llm-proxy/llm-proxy/shared/web"
)

// benchChatBody is make bench's non-streamed chat request.
const benchChatBody = `{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Say hello in one short sentence."}]}`

// discardSink is an EventSink that drops events (the real emitter copies
// the info into a bounded queue; its own cost is benchmarked in events).
type discardSink struct{}

func (discardSink) RequestCompleted(*llmproxy.RequestInfo) {}

// BenchmarkProxyChat measures one proxied non-streamed chat request through
// the whole handler as llm-proxy serve runs it (request id, access log at
// info level, real Validator over SQLite, in-memory limiter with limits on
// every axis, in-memory response cache (a miss: the client does not opt in),
// usage recording, events), against an in-process mock upstream, next to
// a bare httputil.ReverseProxy forwarding to the same upstream. Both
// include the upstream's and the transport's allocations: the proxy's own
// cost is the difference between the two. Run with -benchmem.
func BenchmarkProxyChat(b *testing.B) {
	mock := mockopenai.Start(mockopenai.Options{APIKey: upstreamKey})
	b.Cleanup(mock.Close)
	target, _ := url.Parse(mock.URL)

	b.Run("bare", func(b *testing.B) {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 64
		b.Cleanup(tr.CloseIdleConnections)
		rp := &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(target)
				pr.Out.Header.Set("Authorization", "Bearer "+upstreamKey)
			},
			Transport:     tr,
			FlushInterval: -1,
		}
		benchRequests(b, rp, "anything", http.StatusOK, nil)
	})

	b.Run("proxy", func(b *testing.B) {
		h, token := benchProxy(b, mock.URL)
		benchRequests(b, h, token, http.StatusOK, nil)
	})
}

// BenchmarkProxyCacheHit measures a non-streamed chat request answered
// from the in-memory response cache (make bench's cache scenario, in
// process), next to the mock upstream answering it itself.
func BenchmarkProxyCacheHit(b *testing.B) {
	mock := mockopenai.Start(mockopenai.Options{APIKey: upstreamKey})
	b.Cleanup(mock.Close)
	optIn := http.Header{"Cache-Control": {"public, max-age=60"}}
	b.Run("mock", func(b *testing.B) {
		benchRequests(b, mock, upstreamKey, http.StatusOK, optIn)
	})
	b.Run("proxy", func(b *testing.B) {
		h, token := benchProxy(b, mock.URL)
		served := mock.Requests()
		benchRequests(b, h, token, http.StatusOK, optIn)
		if n := mock.Requests() - served; n != 1 {
			b.Fatalf("the upstream served %d requests, want 1 (then hits)", n)
		}
	})
}

// BenchmarkProxyRefusal measures a request refused for its malformed token
// through the whole handler, next to the mock upstream's own 401 for a
// wrong key (make bench's reject-malformed scenario, in process).
func BenchmarkProxyRefusal(b *testing.B) {
	mock := mockopenai.Start(mockopenai.Options{APIKey: upstreamKey})
	b.Cleanup(mock.Close)
	b.Run("mock", func(b *testing.B) {
		benchRequests(b, mock, "sk-wrong", http.StatusUnauthorized, nil)
	})
	b.Run("proxy", func(b *testing.B) {
		h, _ := benchProxy(b, mock.URL)
		benchRequests(b, h, "not-a-token", http.StatusUnauthorized, nil)
	})
}

// benchRequests sends make bench's chat request to h with the bearer auth
// and the headers in extra, and checks the status of each answer.
func benchRequests(b *testing.B, h http.Handler, auth string, status int, extra http.Header) {
	b.Helper()
	body := []byte(benchChatBody)
	do := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+auth)
		req.Header.Set("Content-Type", "application/json")
		for k, v := range extra {
			req.Header[k] = v
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	if rec := do(); rec.Code != status {
		b.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if rec := do(); rec.Code != status {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
}

// benchProxy is the proxy as llm-proxy serve runs it (see
// BenchmarkProxyChat) in front of the upstream at upstreamURL, and a token
// it accepts.
func benchProxy(b *testing.B, upstreamURL string) (http.Handler, string) {
	b.Helper()
	env := newRealEnv(b, "sqlite")
	exp := time.Now().Add(time.Hour)
	maxReq := int64(1 << 40)
	plain, err := tokens.Generate()
	if err != nil {
		b.Fatal(err)
	}
	big := llmproxy.Limits{RequestsPerMinute: 1 << 40, RequestsPerDay: 1 << 40, TokensPerMinute: 1 << 40, TokensPerDay: 1 << 40}
	if _, err := env.store.CreateToken(context.Background(), llmproxy.Token{
		Hash: env.keyring.HashToken(plain), Hint: tokens.Hint(plain), ProjectID: env.project.ID,
		ExpiresAt: &exp, IsActive: true, MaxRequests: &maxReq, Limits: big,
	}, nil); err != nil {
		b.Fatal(err)
	}
	api, err := apiconfig.Default().WithBaseURL(upstreamURL)
	if err != nil {
		b.Fatal(err)
	}
	cache := httpcache.New(httpcache.NewMemory(64<<20, nil), httpcache.Options{}, nil)
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	cfg := testConfig() // production defaults: no body capture
	cfg.CaptureBodies, cfg.DefaultReserveTokens = false, 1024
	p, err := New(Deps{
		Config: cfg, API: api,
		Auth:    tokens.NewValidator(env.store, env.keyring, tokens.ValidatorOptions{}),
		Limiter: ratelimit.NewMemory(ratelimit.MemoryOptions{}),
		Usage:   newUsageRecorder(), Counter: sharedCounter(), Cache: cache,
		Events: discardSink{}, Log: log,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if tr, ok := p.transport.(*http.Transport); ok {
			tr.CloseIdleConnections()
		}
	})
	mux := http.NewServeMux()
	mux.Handle("/v1/", p)
	return web.Chain(log, mux), plain
}
