package proxy

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/llm-proxy/llm-proxy/internal/mockopenai"
	"github.com/llm-proxy/llm-proxy/shared/apiconfig"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/ratelimit"
	"github.com/llm-proxy/llm-proxy/shared/tokens"
	"github.com/llm-proxy/llm-proxy/shared/usage"
	"github.com/llm-proxy/llm-proxy/shared/web"
)

const (
	upstreamKey = "sk-upstream-project-key"
	goodToken   = "sk-good-token"
)

// sharedCounter is built once for all tests (building encoders costs CPU).
var sharedCounter = sync.OnceValue(func() *usage.Counter {
	c := usage.NewCounter()
	c.Warm()
	return c
})

// fakeAuth maps plaintext tokens to results.
type fakeAuth map[string]*tokens.Auth

func (f fakeAuth) Validate(_ context.Context, token string) (*tokens.Auth, error) {
	if a, ok := f[token]; ok {
		return a, nil
	}
	return nil, llmproxy.E(llmproxy.ErrUnauthorized, llmproxy.CodeTokenNotFound, "token not found")
}

func goodAuth() fakeAuth {
	return fakeAuth{goodToken: {
		Token:       llmproxy.Token{ID: "tok-1", ProjectID: "proj-1", IsActive: true},
		Project:     llmproxy.Project{ID: "proj-1", IsActive: true},
		UpstreamKey: upstreamKey,
	}}
}

// eventRecorder is an EventSink that keeps copies of the infos.
type eventRecorder struct{ ch chan llmproxy.RequestInfo }

func (e *eventRecorder) RequestCompleted(info *llmproxy.RequestInfo) {
	select {
	case e.ch <- *info:
	default:
	}
}

func (e *eventRecorder) next(t *testing.T) llmproxy.RequestInfo {
	t.Helper()
	select {
	case i := <-e.ch:
		return i
	case <-time.After(10 * time.Second):
		t.Fatal("no request event")
		return llmproxy.RequestInfo{}
	}
}

type usageRecorder struct {
	mu   sync.Mutex
	reqs map[string]int
	hits map[string]int
	// per token: the project it was recorded for and its model tokens
	project            map[string]string
	prompt, completion map[string]int64
}

func newUsageRecorder() *usageRecorder {
	return &usageRecorder{reqs: map[string]int{}, hits: map[string]int{}, project: map[string]string{},
		prompt: map[string]int64{}, completion: map[string]int64{}}
}

func (u *usageRecorder) Record(id, projectID string, hit bool, prompt, completion int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if hit {
		u.hits[id]++
	} else {
		u.reqs[id]++
	}
	u.project[id] = projectID
	u.prompt[id] += prompt
	u.completion[id] += completion
}

// tokens returns the project and model tokens recorded for the token.
func (u *usageRecorder) tokens(id string) (project string, prompt, completion int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.project[id], u.prompt[id], u.completion[id]
}

func (u *usageRecorder) count(id string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.reqs[id]
}

type harness struct {
	mock   *mockopenai.Server
	proxy  *Proxy
	srv    *httptest.Server
	events *eventRecorder
	usage  *usageRecorder
}

type harnessOpts struct {
	auth      Authenticator
	mock      mockopenai.Options
	cfg       func(*config.Proxy)
	api       string // YAML; "" = built-in default
	limiter   ratelimit.Limiter
	settler   *ratelimit.Settler
	cache     Cache
	deadline  time.Duration // the server's read, write, read-header and idle timeouts (0 = none)
	transport http.RoundTripper
	events    EventSink    // nil: the harness's eventRecorder
	log       *slog.Logger // the proxy's and the access log's; nil: discard
}

func testConfig() config.Proxy {
	return config.Proxy{
		MaxRequestSize: 1 << 20, StreamKeepAlive: 15 * time.Second, DefaultReserveTokens: 100,
		CaptureBodies: true, MaxRequestBodyCapture: 1 << 16, MaxResponseBodyCapture: 1 << 16,
		UpstreamResponseHeaderTimeout: 10 * time.Second,
	}
}

func newHarness(t *testing.T, o harnessOpts) *harness {
	t.Helper()
	if o.mock.APIKey == "" {
		o.mock.APIKey = upstreamKey
	}
	mock := mockopenai.Start(o.mock)
	t.Cleanup(mock.Close)
	api := apiconfig.Default()
	if o.api != "" {
		var err error
		if api, err = apiconfig.Parse([]byte(o.api), ""); err != nil {
			t.Fatal(err)
		}
	}
	api, err := api.WithBaseURL(mock.URL)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	if o.auth == nil {
		o.auth = goodAuth()
	}
	h := &harness{mock: mock, events: &eventRecorder{ch: make(chan llmproxy.RequestInfo, 1024)},
		usage: newUsageRecorder()}
	log := o.log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var sink EventSink = h.events
	if o.events != nil {
		sink = o.events
	}
	h.proxy, err = New(Deps{
		Config: cfg, API: api, Auth: o.auth, Limiter: o.limiter, Settler: o.settler, Usage: h.usage,
		Counter: sharedCounter(), Cache: o.cache, Events: sink, Log: log, Transport: o.transport,
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", h.proxy)
	mux.Handle("GET /metrics", h.proxy.Metrics().MetricsHandler())
	mux.Handle("GET /metrics/json", h.proxy.Metrics().JSONMetricsHandler())
	srv := httptest.NewUnstartedServer(web.Chain(log, mux))
	srv.Config.ReadTimeout, srv.Config.WriteTimeout = o.deadline, o.deadline
	srv.Config.ReadHeaderTimeout, srv.Config.IdleTimeout = o.deadline, o.deadline
	srv.Start()
	t.Cleanup(srv.Close)
	h.srv = srv
	return h
}
