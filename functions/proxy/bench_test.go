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
	body := []byte(benchChatBody)

	run := func(b *testing.B, h http.Handler, auth string) {
		b.Helper()
		do := func() *httptest.ResponseRecorder {
			req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+auth)
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			return rec
		}
		if rec := do(); rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			if rec := do(); rec.Code != http.StatusOK {
				b.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
		}
	}

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
		run(b, rp, "anything")
	})

	b.Run("proxy", func(b *testing.B) {
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
		api, err := apiconfig.Default().WithBaseURL(mock.URL)
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
			Usage:   newUsageRecorder(), Counter: sharedCounter(), Cache: cache.Middleware,
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
		run(b, web.Chain(log, mux), plain)
	})
}
