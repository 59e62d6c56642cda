package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/llm-proxy/llm-proxy/internal/mockopenai"
	"github.com/llm-proxy/llm-proxy/internal/testenv"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/httpcache"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/ratelimit"
	"github.com/llm-proxy/llm-proxy/shared/sse"
	"github.com/llm-proxy/llm-proxy/shared/tokens"
)

type reply struct {
	status int
	header http.Header
	body   string
	err    struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Code    string `json:"code"`
	}
}

func (h *harness) do(t *testing.T, method, path, token string, body string, hdr map[string]string) reply {
	t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, body: string(b)}
	var env struct {
		Error *json.RawMessage `json:"error"`
	}
	if json.Unmarshal(b, &env) == nil && env.Error != nil {
		_ = json.Unmarshal(*env.Error, &r.err)
	}
	return r
}

const chatBody = `{"model":"gpt-4o","messages":[{"role":"user","content":"hello there"}]}`

func TestKeySwapAndHeaderAllowList(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	r := h.do(t, "POST", "/v1/chat/completions", goodToken, chatBody, map[string]string{
		"Cookie": "session=secret", "X-Forwarded-For": "1.2.3.4", "X-Real-IP": "1.2.3.4", "CF-Connecting-IP": "1.2.3.4",
		"OpenAI-Organization": "org-1", "OpenAI-Beta": "assistants=v2", "X-Stainless-Lang": "go", "X-Internal-Secret": "x",
		"X-Request-ID": "client-id-1", "Idempotency-Key": "idem-1",
	})
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	hdr, _, _ := h.mock.LastRequest()
	if got := hdr.Get("Authorization"); got != "Bearer "+upstreamKey {
		t.Fatalf("upstream Authorization = %q", got)
	}
	for _, name := range []string{"Cookie", "X-Forwarded-For", "X-Real-Ip", "Cf-Connecting-Ip", "X-Internal-Secret", "X-Proxy-Id", "Forwarded", "Origin"} {
		if v := hdr.Get(name); v != "" {
			t.Errorf("%s reached upstream: %q", name, v)
		}
	}
	for _, name := range []string{"Openai-Organization", "Openai-Beta", "X-Stainless-Lang", "Idempotency-Key"} {
		if hdr.Get(name) == "" {
			t.Errorf("%s did not reach upstream", name)
		}
	}
	for name, vals := range hdr {
		for _, v := range vals {
			if strings.Contains(v, "proj-1") || strings.Contains(v, goodToken) {
				t.Errorf("header %s leaks the project id or token: %q", name, v)
			}
		}
	}
	rid := r.header.Get("X-Request-ID")
	if rid == "" || rid == "client-id-1" || r.header.Get("X-Upstream-Request-Id") != "req_mock" {
		t.Fatalf("X-Request-ID = %q, upstream id = %q", rid, r.header.Get("X-Upstream-Request-Id"))
	}
	info := h.events.next(t)
	if info.RequestID != rid || info.ClientRequestID != "client-id-1" || info.TokenID != "tok-1" || info.ProjectID != "proj-1" ||
		info.Model != "gpt-4o" || info.Status != 200 || info.Usage.Source != llmproxy.UsageReported || info.Usage.PromptTokens != 2 {
		t.Fatalf("event = %+v", info)
	}
	if len(info.RequestBody) == 0 || len(info.ResponseBody) != 0 && !json.Valid(info.ResponseBody) {
		t.Fatalf("captured bodies: req %q", info.RequestBody)
	}
	if h.usage.count("tok-1") != 1 {
		t.Fatal("usage not recorded")
	}
	if project, prompt, completion := h.usage.tokens("tok-1"); project != "proj-1" ||
		prompt != info.Usage.PromptTokens || completion != info.Usage.CompletionTokens {
		t.Fatalf("usage recorded for project %q with %d prompt and %d completion tokens, want proj-1 and %+v", project, prompt, completion, info.Usage)
	}
}

func TestRefusals(t *testing.T) {
	h := newHarness(t, harnessOpts{api: `
apis:
  openai:
    base_url: https://replaced
    allowed_endpoints: [/v1/chat/completions, /v1/models, /v1/audio/transcriptions]
    allowed_methods: [GET, POST, OPTIONS]
    param_whitelist:
      model: [gpt-4o, gpt-4o-*]
    allowed_origins: [https://app.example.com]
`})
	big := `{"model":"gpt-4o","pad":"` + strings.Repeat("x", 1<<20) + `"}`
	tests := []struct {
		name, method, path, token, body string
		hdr                             map[string]string
		status                          int
		code                            string
		unattributed                    bool // refused before the token was checked
	}{
		{"no token", "POST", "/v1/chat/completions", "", chatBody, nil, 401, "invalid_token", true},
		{"unknown token", "POST", "/v1/chat/completions", "sk-nope", chatBody, nil, 401, "token_not_found", true},
		{"basic scheme", "POST", "/v1/chat/completions", "", chatBody, map[string]string{"Authorization": "Basic abc"}, 401, "invalid_token", true},
		{"endpoint", "POST", "/v1/fine_tuning/jobs", goodToken, chatBody, nil, 404, "endpoint_not_found", true},
		{"prefix trick", "GET", "/v1/modelsX", goodToken, "", nil, 404, "endpoint_not_found", true},
		{"dot segments", "GET", "/v1/models/../files", goodToken, "", nil, 404, "endpoint_not_found", true},
		{"method", "DELETE", "/v1/models/gpt-4o", goodToken, "", nil, 405, "method_not_allowed", true},
		{"too large", "POST", "/v1/chat/completions", goodToken, big, nil, 413, "request_too_large", false},
		{"model not allowed", "POST", "/v1/chat/completions", goodToken, `{"model":"gpt-3.5-turbo"}`, nil, 400, "param_not_allowed", false},
		{"charset bypass", "POST", "/v1/chat/completions", goodToken, `{"model":"gpt-3.5-turbo"}`,
			map[string]string{"Content-Type": "application/json; charset=utf-8"}, 400, "param_not_allowed", false},
		{"text/plain bypass", "POST", "/v1/chat/completions", goodToken, `{"model":"gpt-3.5-turbo"}`,
			map[string]string{"Content-Type": "text/plain"}, 400, "param_not_allowed", false},
		{"invalid json", "POST", "/v1/chat/completions", goodToken, `{"model":`, nil, 400, "invalid_request_body", false},
		{"duplicate key", "POST", "/v1/chat/completions", goodToken, `{"model":"gpt-4o","model":"gpt-3.5-turbo"}`, nil, 400, "invalid_request_body", false},
		{"non-string model", "POST", "/v1/chat/completions", goodToken, `{"model":["gpt-4o"]}`, nil, 400, "param_not_allowed", false},
		{"unlisted origin", "POST", "/v1/chat/completions", goodToken, chatBody, map[string]string{"Origin": "https://evil.example"}, 403, "origin_not_allowed", true},
	}
	unattributed := map[string]float64{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.mock.Requests()
			r := h.do(t, tt.method, tt.path, tt.token, tt.body, tt.hdr)
			if r.status != tt.status || r.err.Code != tt.code || r.err.Message == "" || r.err.Type == "" {
				t.Fatalf("got %d %+v, want %d %s (%s)", r.status, r.err, tt.status, tt.code, truncate(r.body, 200))
			}
			if r.header.Get("X-Request-ID") == "" || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
				t.Fatal("error without X-Request-ID or JSON content type")
			}
			if tt.status == 405 && r.header.Get("Allow") != "GET, OPTIONS, POST" {
				t.Fatalf("Allow = %q", r.header.Get("Allow"))
			}
			if h.mock.Requests() != before {
				t.Fatal("a refused request reached upstream")
			}
			if !tt.unattributed {
				info := h.events.next(t)
				if info.Status != tt.status || info.ErrorCode != tt.code || info.ProjectID != "proj-1" {
					t.Fatalf("event status %d code %q project %q", info.Status, info.ErrorCode, info.ProjectID)
				}
				return
			}
			// Refused before a token was recognised: counted, no event.
			// The counter moves in the bookkeeping after the response; the
			// next event must then be a later request's.
			unattributed[tt.code]++
			waitUnattributed(t, h, tt.code, unattributed[tt.code])
			marker := h.do(t, "POST", "/v1/chat/completions", goodToken, chatBody, nil)
			if info := h.events.next(t); info.RequestID != marker.header.Get("X-Request-ID") {
				t.Fatalf("an event for a request no project owns: %+v", info)
			}
		})
	}

	// Multipart: the whitelist applies to the form field too.
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("model", "whisper-1")
	fw, _ := mw.CreateFormFile("file", "a.mp3")
	_, _ = fw.Write([]byte("ID3 audio"))
	_ = mw.Close()
	r := h.do(t, "POST", "/v1/audio/transcriptions", goodToken, buf.String(), map[string]string{"Content-Type": mw.FormDataContentType()})
	if r.status != 400 || r.err.Code != "param_not_allowed" {
		t.Fatalf("multipart model: %d %s", r.status, r.body)
	}

	// A listed origin gets CORS headers (echoed, never *), Vary: Origin.
	r = h.do(t, "POST", "/v1/chat/completions", goodToken, chatBody, map[string]string{"Origin": "https://app.example.com"})
	if r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "https://app.example.com" || !strings.Contains(strings.Join(r.header.Values("Vary"), ","), "Origin") {
		t.Fatalf("CORS on listed origin: %d %v", r.status, r.header)
	}
	if r.header.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatal("credentials allowed")
	}
	// A browser may read both request ids.
	if exp := r.header.Get("Access-Control-Expose-Headers"); !strings.Contains(exp, "X-Request-ID") || !strings.Contains(exp, "X-Client-Request-Id") {
		t.Fatalf("Access-Control-Expose-Headers = %q", exp)
	}
}

// waitUnattributed waits until llm_proxy_unattributed_requests_total of
// code is want: requests are counted in the bookkeeping after the response.
func waitUnattributed(t *testing.T, h *harness, code string, want float64) {
	t.Helper()
	counter := h.proxy.Metrics().unattributed.WithLabelValues(code)
	for deadline := time.Now().Add(10 * time.Second); testutil.ToFloat64(counter) != want; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("llm_proxy_unattributed_requests_total{error_code=%q} = %v, want %v", code, testutil.ToFloat64(counter), want)
		}
	}
}

func TestPreflight(t *testing.T) {
	h := newHarness(t, harnessOpts{api: `
apis:
  openai:
    base_url: https://replaced
    allowed_endpoints: [/v1/chat/completions]
    allowed_methods: [POST, OPTIONS]
    allowed_origins: [https://app.example.com]
`})
	r := h.do(t, "OPTIONS", "/v1/chat/completions", "", "", map[string]string{
		"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"})
	if r.status != 204 || r.header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		r.header.Get("Access-Control-Allow-Headers") != "authorization, content-type" || r.header.Get("Access-Control-Max-Age") == "" {
		t.Fatalf("preflight: %d %v", r.status, r.header)
	}
	r = h.do(t, "OPTIONS", "/v1/chat/completions", "", "", map[string]string{"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
	if r.status != 403 || r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("unlisted preflight: %d %v", r.status, r.header)
	}
	if h.mock.Requests() != 0 {
		t.Fatal("preflight reached upstream")
	}
}

// sseEvents reads a streamed response and returns the data payloads.
func sseEvents(t *testing.T, body io.Reader) []string {
	t.Helper()
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for line := range sse.Lines(b) {
		if name, value := sse.Field(line); string(name) == "data" {
			out = append(out, string(value))
		}
	}
	return out
}

func TestIncludeUsageStripped(t *testing.T) {
	h := newHarness(t, harnessOpts{mock: mockopenai.Options{Chunks: 4}})
	for _, clientAsked := range []bool{false, true} {
		body := `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"a b c"}]}`
		if clientAsked {
			body = `{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"a b c"}]}`
		}
		r := h.do(t, "POST", "/v1/chat/completions", goodToken, body, nil)
		_, upBody, _ := h.mock.LastRequest()
		if !strings.Contains(string(upBody), `"include_usage":true`) {
			t.Fatalf("upstream request lacks include_usage: %s", upBody)
		}
		events := sseEvents(t, strings.NewReader(r.body))
		if events[len(events)-1] != "[DONE]" {
			t.Fatalf("stream does not end with [DONE]: %q", events)
		}
		var usageChunks int
		for _, e := range events {
			if strings.Contains(e, `"choices":[]`) {
				usageChunks++
			}
			if !clientAsked && strings.Contains(e, `"usage"`) {
				t.Fatalf("client did not ask for usage but saw it: %s", e)
			}
		}
		if want := map[bool]int{false: 0, true: 1}[clientAsked]; usageChunks != want {
			t.Fatalf("clientAsked=%v: %d usage chunks", clientAsked, usageChunks)
		}
		info := h.events.next(t)
		if info.Usage.Source != llmproxy.UsageReported || info.Usage.CompletionTokens != 4 || info.Usage.PromptTokens != 3 || !info.Stream {
			t.Fatalf("usage = %+v", info.Usage)
		}
		if !bytes.Contains(info.ResponseBody, []byte("data: ")) {
			t.Fatal("stream body not captured")
		}
	}
}

func TestUsageEstimatedWhenOmitted(t *testing.T) {
	h := newHarness(t, harnessOpts{mock: mockopenai.Options{Chunks: 3, OmitUsage: true}})
	r := h.do(t, "POST", "/v1/chat/completions", goodToken, chatBody, nil)
	if r.status != 200 {
		t.Fatal(r.body)
	}
	info := h.events.next(t)
	want := sharedCounter().Count("gpt-4o", mockopenai.Answer(3))
	if info.Usage.Source != llmproxy.UsageEstimated || info.Usage.CompletionTokens != want || info.Usage.PromptTokens == 0 {
		t.Fatalf("usage = %+v (want completion %d)", info.Usage, want)
	}
	// Streamed and omitted.
	r = h.do(t, "POST", "/v1/chat/completions", goodToken, `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"x"}]}`, nil)
	info = h.events.next(t)
	if info.Usage.Source != llmproxy.UsageEstimated || info.Usage.CompletionTokens != want {
		t.Fatalf("stream usage = %+v", info.Usage)
	}
}

func TestUpstreamErrorsPassThrough(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	r := h.do(t, "POST", "/v1/chat/completions", goodToken, `{"model":"mock-error-429","messages":[]}`, nil)
	if r.status != 429 || r.header.Get("Retry-After") != "7" || r.header.Get("X-Ratelimit-Remaining-Requests") != "0" || r.err.Message != "mock error 429" {
		t.Fatalf("429 pass-through: %d %v %s", r.status, r.header, r.body)
	}
	h.mock.Fail(&mockopenai.Failure{Status: 503, Count: 1})
	r = h.do(t, "GET", "/v1/models", goodToken, "", nil)
	if r.status != 503 {
		t.Fatalf("503 pass-through: %d", r.status)
	}
}

func TestUpstreamUnreachableAndTimeout(t *testing.T) {
	// 502: nothing listens at the upstream address.
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	h := newHarness(t, harnessOpts{})
	h.proxy.api, _ = h.proxy.api.WithBaseURL(deadURL)
	r := h.do(t, "GET", "/v1/models", goodToken, "", nil)
	if r.status != 502 || r.err.Code != "upstream_unavailable" || r.err.Type != "server_error" {
		t.Fatalf("unreachable: %d %s", r.status, r.body)
	}

	// 504: upstream takes longer than the response-header timeout.
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	h2 := newHarness(t, harnessOpts{cfg: func(c *config.Proxy) { c.UpstreamResponseHeaderTimeout = 200 * time.Millisecond }})
	h2.proxy.api, _ = h2.proxy.api.WithBaseURL(slow.URL)
	r = h2.do(t, "GET", "/v1/models", goodToken, "", nil)
	if r.status != 504 || r.err.Code != "upstream_timeout" {
		t.Fatalf("timeout: %d %s", r.status, r.body)
	}
}

func TestMidStreamFailureEndsCleanly(t *testing.T) {
	var logs testenv.Buffer
	h := newHarness(t, harnessOpts{mock: mockopenai.Options{Chunks: 6}, log: slog.New(slog.NewJSONHandler(&logs, nil))})
	req, _ := http.NewRequest("POST", h.srv.URL+"/v1/chat/completions", strings.NewReader(
		`{"model":"mock-abort-4","stream":true,"messages":[{"role":"user","content":"x"}]}`))
	req.Header.Set("Authorization", "Bearer "+goodToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("the stream did not end cleanly: %v", err)
	}
	events := sseEvents(t, bytes.NewReader(body))
	last := events[len(events)-1]
	if !strings.Contains(last, codeStreamInterrupted) || len(events) != 5 {
		t.Fatalf("events = %q", events)
	}
	info := h.events.next(t)
	if info.Usage.Source != llmproxy.UsageEstimated || info.Usage.CompletionTokens == 0 {
		t.Fatalf("aborted stream usage = %+v", info.Usage)
	}
	// The 200 was on the wire; what is recorded says how the stream ended.
	if resp.StatusCode != 200 || info.Status != 502 || info.ErrorCode != codeStreamInterrupted {
		t.Fatalf("wire status %d; event status %d, error_code %q; want 200; 502, %s", resp.StatusCode, info.Status, info.ErrorCode, codeStreamInterrupted)
	}
	line := accessLine(t, &logs, resp.Header.Get("X-Request-ID"))
	if line["status"] != float64(502) || line["error_code"] != codeStreamInterrupted || line["level"] != "WARN" {
		t.Fatalf("access log line %v, want status 502, error_code %s, level WARN", line, codeStreamInterrupted)
	}
	reg := h.proxy.Metrics().Registry
	if n := testenv.Counter(t, reg, "llm_proxy_http_requests_total", "code", "5xx"); n != 1 {
		t.Fatalf("llm_proxy_http_requests_total{code=5xx} = %v, want 1", n)
	}
	if n := h.proxy.Metrics().Snapshot().ErrorCount; n != 1 {
		t.Fatalf("error_count = %d, want 1", n)
	}
}

// accessLine waits for the access-log line of the request with our id
// (written once the handler returned, which may be after the client read
// the answer) and fails unless there is exactly one.
func accessLine(t *testing.T, logs *testenv.Buffer, id string) map[string]any {
	t.Helper()
	if id == "" {
		t.Fatal("no request id")
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		var found []map[string]any
		for l := range strings.Lines(logs.String()) {
			var m map[string]any
			if strings.Contains(l, `"msg":"http request"`) && json.Unmarshal([]byte(l), &m) == nil && m["request_id"] == id {
				found = append(found, m)
			}
		}
		switch {
		case len(found) > 1:
			t.Fatalf("%d access-log lines for %s: %s", len(found), id, logs.String())
		case len(found) == 1:
			return found[0]
		case time.Now().After(deadline):
			t.Fatalf("no access-log line for %s: %s", id, logs.String())
		}
	}
}

func TestClientDisconnectCancelsUpstream(t *testing.T) {
	var logs testenv.Buffer
	h := newHarness(t, harnessOpts{mock: mockopenai.Options{Chunks: 1000, ChunkDelay: 20 * time.Millisecond},
		log: slog.New(slog.NewJSONHandler(&logs, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", h.srv.URL+"/v1/chat/completions", strings.NewReader(
		`{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"x"}]}`))
	req.Header.Set("Authorization", "Bearer "+goodToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	for i := 0; i < 3; i++ { // a few events arrive, then the client leaves
		if _, err := br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	_ = resp.Body.Close()
	select {
	case path := <-h.mock.CanceledCh:
		if path != "/v1/chat/completions" {
			t.Fatalf("canceled %s", path)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("upstream did not observe the cancellation")
	}
	info := h.events.next(t)
	if info.Status != 499 || info.ErrorCode != codeClientClosed || info.Usage.Source != llmproxy.UsageEstimated {
		t.Fatalf("disconnect event: status %d, error_code %q, usage %+v", info.Status, info.ErrorCode, info.Usage)
	}
	// The reverse proxy aborted the handler (http.ErrAbortHandler): the
	// request still has its one access-log line.
	line := accessLine(t, &logs, resp.Header.Get("X-Request-ID"))
	if line["status"] != float64(499) || line["error_code"] != codeClientClosed || line["path"] != "/v1/chat/completions" {
		t.Fatalf("access log line %v, want status 499, error_code %s", line, codeClientClosed)
	}
	// A normal request after it: one line too.
	r := h.do(t, "POST", "/v1/chat/completions", goodToken, chatBody, nil)
	if line := accessLine(t, &logs, r.header.Get("X-Request-ID")); r.status != 200 || line["status"] != float64(200) || line["error_code"] != nil {
		t.Fatalf("normal request: %d, access log line %v", r.status, line)
	}
}

func TestKeepAliveOnIdleStream(t *testing.T) {
	h := newHarness(t, harnessOpts{
		mock: mockopenai.Options{Chunks: 2, ChunkDelay: 150 * time.Millisecond}, // 3 keep-alive intervals
		cfg:  func(c *config.Proxy) { c.StreamKeepAlive = 50 * time.Millisecond },
	})
	r := h.do(t, "POST", "/v1/chat/completions", goodToken, `{"model":"gpt-4o","stream":true,"messages":[]}`, nil)
	if !strings.Contains(r.body, ": keep-alive\n\n") {
		t.Fatalf("no keep-alive comment in %q", r.body)
	}
	// Keep-alives sit between events, never inside one.
	for _, part := range strings.Split(r.body, "\n\n") {
		if strings.Contains(part, "keep-alive") && part != ": keep-alive" {
			t.Fatalf("keep-alive inside an event: %q", part)
		}
	}
	if events := sseEvents(t, strings.NewReader(r.body)); events[len(events)-1] != "[DONE]" {
		t.Fatal("stream incomplete")
	}
}

func TestMaxRequestsExactUnderConcurrency(t *testing.T) {
	max := int64(7)
	auth := goodAuth()
	auth[goodToken].Token.MaxRequests = &max
	h := newHarness(t, harnessOpts{auth: auth, limiter: ratelimit.NewMemory(ratelimit.MemoryOptions{})})
	var wg sync.WaitGroup
	statuses := make(chan int, 40)
	for range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", h.srv.URL+"/v1/models", nil)
			req.Header.Set("Authorization", "Bearer "+goodToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == 429 && resp.Header.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
			statuses <- resp.StatusCode
		}()
	}
	wg.Wait()
	close(statuses)
	counts := map[int]int{}
	for s := range statuses {
		counts[s]++
	}
	if counts[200] != 7 || counts[429] != 33 || h.mock.Requests() != 7 {
		t.Fatalf("statuses %v, upstream saw %d", counts, h.mock.Requests())
	}
}

func TestTokenLimitHeadersAndSettlement(t *testing.T) {
	auth := goodAuth()
	auth[goodToken].Token.Limits = llmproxy.Limits{RequestsPerMinute: 100, TokensPerMinute: 100000}
	h := newHarness(t, harnessOpts{auth: auth, limiter: ratelimit.NewMemory(ratelimit.MemoryOptions{})})
	r := h.do(t, "POST", "/v1/chat/completions", goodToken, `{"model":"gpt-4o","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}`, nil)
	if r.status != 200 || r.header.Get("X-Ratelimit-Limit-Requests") != "100" || r.header.Get("X-Ratelimit-Remaining-Requests") != "99" ||
		r.header.Get("X-Ratelimit-Limit-Tokens") != "100000" {
		t.Fatalf("headers: %d %v", r.status, r.header)
	}
	h.events.next(t)
	// The second request sees the first one's actual usage (settled), not
	// its 50-token reservation.
	r = h.do(t, "GET", "/v1/models", goodToken, "", nil)
	if rem := r.header.Get("X-Ratelimit-Remaining-Tokens"); rem == "" || rem == fmt.Sprint(100000-50) {
		t.Fatalf("remaining tokens = %q", rem)
	}
}

// TestSettlementOffRequestPath: with Redis limits and a Settler, the
// reservation is settled after the response (not before it), exactly to
// the reported usage; a request without a model reserves nothing.
func TestSettlementOffRequestPath(t *testing.T) {
	client, prefix := testenv.Redis(t)
	auth := goodAuth()
	auth[goodToken].Token.Limits = llmproxy.Limits{TokensPerMinute: 100000}
	settler := ratelimit.NewSettler(ratelimit.SettlerOptions{})
	h := newHarness(t, harnessOpts{auth: auth, settler: settler,
		limiter: ratelimit.NewRedis(client, prefix+"rl:", ratelimit.RedisOptions{})})
	r := h.do(t, "POST", "/v1/chat/completions", goodToken, `{"model":"gpt-4o","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}`, nil)
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	used := h.events.next(t).Usage.TotalTokens
	if used <= 0 {
		t.Fatal("no usage reported")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := settler.Close(ctx); err != nil { // drains: the settlement is done
		t.Fatal(err)
	}
	for range 2 { // no model: nothing reserved, nothing held
		r = h.do(t, "GET", "/v1/models", goodToken, "", nil)
		if rem, want := r.header.Get("X-Ratelimit-Remaining-Tokens"), fmt.Sprint(100000-used); rem != want {
			t.Fatalf("remaining tokens = %q, want %s (the first request's usage settled)", rem, want)
		}
	}
}

func TestProgressiveStreamAndLongStream(t *testing.T) {
	// Server deadlines far shorter than the stream: the stream must outlive
	// them. The mock paces 12 events 250 ms apart (3 s in all) while the
	// server's WriteTimeout and ReadTimeout are 1 s: without the proxy
	// clearing both deadlines the stream is cut after 1 s (4 events).
	// TestLongStreamOutlivesServerDeadlines crosses every server deadline
	// many times, with pauses longer than them.
	const events, gap = 12, 250 * time.Millisecond
	h := newHarness(t, harnessOpts{mock: mockopenai.Options{Chunks: events, ChunkDelay: gap}, deadline: time.Second})
	arrivals := streamArrivals(t, h, events)
	spread := arrivals[len(arrivals)-1].Sub(arrivals[0])
	if spread < time.Duration(events-2)*gap {
		t.Fatalf("events arrived bunched: spread %v", spread)
	}
	// Progressive, not merely late: every content event arrived before the
	// next one was sent, so no two consecutive content events are bunched.
	bunched := 0
	for i := 2; i < len(arrivals)-2; i++ {
		if arrivals[i].Sub(arrivals[i-1]) < gap/5 {
			bunched++
		}
	}
	if bunched > 2 { // generous: a loaded 2-core machine may delay a few
		t.Fatalf("%d content events arrived bunched: %v", bunched, arrivals)
	}
}

// streamArrivals streams a chat completion and returns the receive time of
// every data event.
func streamArrivals(t *testing.T, h *harness, chunks int) []time.Time {
	t.Helper()
	req, _ := http.NewRequest("POST", h.srv.URL+"/v1/chat/completions", strings.NewReader(
		`{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"x"}]}`))
	req.Header.Set("Authorization", "Bearer "+goodToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var arrivals []time.Time
	sc := bufio.NewScanner(resp.Body)
	done := false
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data: ") {
			arrivals = append(arrivals, time.Now())
			done = sc.Text() == "data: [DONE]"
		}
	}
	if err := sc.Err(); err != nil || !done {
		t.Fatalf("stream cut after %d events: %v", len(arrivals), err)
	}
	// role chunk + content chunks + finish chunk + [DONE]
	if len(arrivals) != chunks+3 {
		t.Fatalf("%d events, want %d", len(arrivals), chunks+3)
	}
	return arrivals
}

func TestMetricsHandlers(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.do(t, "POST", "/v1/chat/completions", goodToken, chatBody, nil)
	h.do(t, "GET", "/v1/nope", goodToken, "", nil)
	h.events.next(t) // the chat request's; the refused one emits none
	waitUnattributed(t, h, "endpoint_not_found", 1)
	resp, err := http.Get(h.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`llm_proxy_http_requests_total{code="2xx",endpoint="/v1/chat/completions"} 1`,
		`llm_proxy_http_requests_total{code="4xx",endpoint="other"} 1`,
		`llm_proxy_unattributed_requests_total{error_code="endpoint_not_found"} 1`,
		`llm_proxy_model_tokens_total{kind="completion",source="reported"} 5`,
		"llm_proxy_requests_total 2", "llm_proxy_errors_total 1", "llm_proxy_time_to_first_byte_seconds_bucket",
		"llm_proxy_upstream_latency_seconds_bucket", "llm_proxy_streams_in_flight 0", "go_goroutines",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	var js JSONMetrics
	resp, err = http.Get(h.srv.URL + "/metrics/json")
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(resp.Body).Decode(&js)
	resp.Body.Close()
	if js.RequestCount != 2 || js.ErrorCount != 1 || js.UptimeSeconds <= 0 {
		t.Fatalf("json metrics = %+v", js)
	}
}

// hitCache is a stand-in for the response cache: it answers /v1/models of
// proj-1 itself, passes the rest upstream, and records what it was given
// and what its Upstream reported.
type hitCache struct {
	mu       sync.Mutex
	req      httpcache.Request
	complete bool
}

func (c *hitCache) Serve(w http.ResponseWriter, r *http.Request, req httpcache.Request, next httpcache.Upstream) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.req, c.complete = req, false
	if r.URL.Path == "/v1/models" && req.ProjectID == "proj-1" {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"object":"list","data":[]}`)
		return llmproxy.CacheHit
	}
	c.complete = next(w, r)
	return llmproxy.CacheMiss
}

func (c *hitCache) last() (httpcache.Request, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.req, c.complete
}

// TestCacheArguments: the cache is given the project, the stream flag and
// the body as upstream receives it, its Upstream reports whether upstream
// answered in full, and the status it returns reaches the event.
func TestCacheArguments(t *testing.T) {
	const streamChat = `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	tests := []struct {
		name     string
		body     string
		setup    func(*mockopenai.Server)
		stream   bool
		wantBody string
		complete bool
	}{
		{"answer", chatBody, nil, false, chatBody, true},
		{"stream (include_usage added)", streamChat, nil, true,
			`{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}],"stream_options":{"include_usage":true}}`, true},
		{"upstream error", chatBody, func(m *mockopenai.Server) { m.Fail(&mockopenai.Failure{Status: 500, Message: "boom"}) }, false, chatBody, false},
		{"interrupted stream", streamChat, func(m *mockopenai.Server) { m.AbortStreamsAfter(2) }, true, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cache := &hitCache{}
			h := newHarness(t, harnessOpts{cache: cache})
			if tt.setup != nil {
				tt.setup(h.mock)
			}
			h.do(t, "POST", "/v1/chat/completions", goodToken, tt.body, nil)
			info := h.events.next(t)
			req, complete := cache.last()
			if req.ProjectID != "proj-1" || req.Stream != tt.stream || (tt.wantBody != "" && string(req.Body) != tt.wantBody) {
				t.Fatalf("cache got %+v (body %s)", req, req.Body)
			}
			if complete != tt.complete {
				t.Fatalf("upstream reported complete=%v, want %v", complete, tt.complete)
			}
			if info.CacheStatus != llmproxy.CacheMiss {
				t.Fatalf("event cache status %q", info.CacheStatus)
			}
		})
	}
}

// TestRequestIDs: our request id is in X-Request-ID, the client's own
// X-Request-ID comes back as X-Client-Request-Id, on answers and refusals
// alike; the access log line and the event carry both, upstream is sent
// ours.
func TestRequestIDs(t *testing.T) {
	tests := []struct {
		name, token string
		status      int
		event       bool
	}{
		{"answered", goodToken, 200, true},
		{"refused", "bad-token", 401, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs testenv.Buffer
			h := newHarness(t, harnessOpts{log: slog.New(slog.NewJSONHandler(&logs, nil))})
			r := h.do(t, "POST", "/v1/chat/completions", tt.token, chatBody, map[string]string{"X-Request-ID": "client-id-1"})
			if r.status != tt.status {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			ours := r.header.Get("X-Request-ID")
			if len(ours) != 32 || ours == "client-id-1" {
				t.Fatalf("X-Request-ID = %q, want an id of ours", ours)
			}
			if got := r.header.Get("X-Client-Request-Id"); got != "client-id-1" {
				t.Fatalf("X-Client-Request-Id = %q, want the client's", got)
			}
			if tt.event {
				info := h.events.next(t)
				if info.RequestID != ours || info.ClientRequestID != "client-id-1" {
					t.Fatalf("event ids %q, %q; want %q, client-id-1", info.RequestID, info.ClientRequestID, ours)
				}
				if hdr, _, _ := h.mock.LastRequest(); hdr.Get("X-Client-Request-Id") != ours {
					t.Fatalf("upstream X-Client-Request-Id = %q, want ours %q", hdr.Get("X-Client-Request-Id"), ours)
				}
			}
			// The line is written once the handler returned, which may be
			// after the client read the answer.
			var line map[string]any
			for deadline := time.Now().Add(10 * time.Second); line == nil; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("no access log line: %s", logs.String())
				}
				for l := range strings.Lines(logs.String()) {
					if strings.Contains(l, `"msg":"http request"`) && json.Unmarshal([]byte(l), &line) != nil {
						t.Fatalf("access log line %s", l)
					}
				}
			}
			if line["request_id"] != ours || line["client_request_id"] != "client-id-1" {
				t.Fatalf("access log request_id %v, client_request_id %v; want %q, client-id-1", line["request_id"], line["client_request_id"], ours)
			}
		})
	}
}

func TestCacheLayerHit(t *testing.T) {
	cache := &hitCache{}
	h := newHarness(t, harnessOpts{cache: cache})
	r := h.do(t, "GET", "/v1/models", goodToken, "", nil)
	if r.status != 200 || h.mock.Requests() != 0 {
		t.Fatalf("cache hit: %d, upstream %d", r.status, h.mock.Requests())
	}
	info := h.events.next(t)
	if info.CacheStatus != llmproxy.CacheHit || info.Usage.Source != llmproxy.UsageNone {
		t.Fatalf("event %+v", info)
	}
	h.usage.mu.Lock()
	hits := h.usage.hits["tok-1"]
	h.usage.mu.Unlock()
	if hits != 1 {
		t.Fatal("cache hit not recorded")
	}
	if project, prompt, completion := h.usage.tokens("tok-1"); project != "proj-1" || prompt != 0 || completion != 0 {
		t.Fatalf("cache hit recorded for project %q with %d prompt and %d completion tokens, want proj-1 and none", project, prompt, completion)
	}
}

func TestValidatorOutageIs503(t *testing.T) {
	h := newHarness(t, harnessOpts{auth: failingAuth{}})
	r := h.do(t, "GET", "/v1/models", goodToken, "", nil)
	if r.status != 503 || r.err.Code != llmproxy.CodeUnavailable {
		t.Fatalf("%d %s", r.status, r.body)
	}
}

type failingAuth struct{}

func (failingAuth) Validate(context.Context, string) (*tokens.Auth, error) {
	return nil, fmt.Errorf("dial tcp: connection refused")
}

func TestIncludeUsageRewrite(t *testing.T) {
	tests := map[string]string{
		`{"model":"m","stream":true}`:                                    `{"model":"m","stream":true,"stream_options":{"include_usage":true}}`,
		`{"stream":true,"stream_options":{"include_usage":false,"x":1}}`: `{"stream":true,"stream_options":{"include_usage":true,"x":1}}`,
		`{"stream_options":null,"stream":true}`:                          `{"stream_options":{"include_usage":true},"stream":true}`,
		`{"a":"\u00e9","stream":true}`:                                   `{"a":"\u00e9","stream":true,"stream_options":{"include_usage":true}}`,
	}
	for in, want := range tests {
		ms, err := parseObject([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		got, err := withIncludeUsage(ms)
		if err != nil || string(got) != want {
			t.Errorf("withIncludeUsage(%s) = %s, want %s", in, got, want)
		}
	}
}

// blockingSink holds the handler in its bookkeeping until released.
type blockingSink struct{ release chan struct{} }

func (s blockingSink) RequestCompleted(*llmproxy.RequestInfo) { <-s.release }

// TestAnswerBeforeBookkeeping: the client has the whole of an answer of
// known length while the proxy's bookkeeping (here the event, which comes
// last) still runs: usage, settlement, metrics, events and the access log
// are not on the latency path.
func TestAnswerBeforeBookkeeping(t *testing.T) {
	release := make(chan struct{})
	h := newHarness(t, harnessOpts{events: blockingSink{release: release}})
	defer close(release)
	type result struct {
		status int
		body   string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("POST", h.srv.URL+"/v1/chat/completions", strings.NewReader(chatBody))
		req.Header.Set("Authorization", "Bearer "+goodToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		done <- result{status: resp.StatusCode, body: string(b), err: err}
	}()
	select {
	case r := <-done:
		if r.err != nil || r.status != http.StatusOK || !strings.Contains(r.body, `"usage"`) {
			t.Fatalf("answer: %d %q %v", r.status, r.body, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the client got no complete answer while the bookkeeping ran: the answer waited for it")
	}
}
