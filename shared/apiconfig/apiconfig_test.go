package apiconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llm-proxy/llm-proxy/shared/config"
)

const originalFile = `
default_api: openai
apis:
  openai:
    base_url: https://api.openai.com
    allowed_endpoints:
      - /v1/chat/completions
      - /v1/completions
      - /v1/models
    allowed_methods: [GET, post, OPTIONS]
    timeouts:
      request: 120s
      response_header: 30s
      idle_connection: 90s
      flush_interval: 10ms
    connection:
      max_idle_conns: 100
      max_idle_conns_per_host: 20
    param_whitelist:
      model: ["gpt-4o", "gpt-4o-*", "gpt-4.1"]
    allowed_origins: ["https://www.example.com", "http://localhost:4000"]
    required_headers: [origin]
  anthropic:
    base_url: https://api.anthropic.com
    allowed_endpoints: [/v1/messages]
    allowed_methods: [POST]
`

func TestParseOriginalSchema(t *testing.T) {
	p, err := Parse([]byte(originalFile), "openai")
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "openai" || p.BaseURL.String() != "https://api.openai.com" {
		t.Fatalf("provider = %s %s", p.Name, p.BaseURL)
	}
	if p.Timeouts.ResponseHeader != 30*time.Second || p.Connection.MaxIdleConnsPerHost != 20 {
		t.Fatalf("timeouts/connection not read: %+v %+v", p.Timeouts, p.Connection)
	}
	if !p.AllowsMethod("POST") || p.AllowsMethod("DELETE") {
		t.Fatalf("methods = %v", p.Methods)
	}
	if p.AllowHeader() != "GET, OPTIONS, POST" {
		t.Fatalf("Allow = %q", p.AllowHeader())
	}
	if !p.ParamAllowed("model", "gpt-4o-mini") || p.ParamAllowed("model", "gpt-3.5-turbo") || !p.ParamAllowed("temperature", "2") {
		t.Fatal("param whitelist wrong")
	}
	if !p.OriginAllowed("https://WWW.example.com") || p.OriginAllowed("https://evil.example.com") {
		t.Fatal("origins wrong")
	}
	if !p.RequiresHeader("origin") {
		t.Fatal("required header origin missing")
	}
	// Unknown name falls back to default_api.
	q, err := Parse([]byte(originalFile), "nope")
	if err != nil || q.Name != "openai" {
		t.Fatalf("fallback = %v, %v", q, err)
	}
	a, err := Parse([]byte(originalFile), "anthropic")
	if err != nil || a.Name != "anthropic" {
		t.Fatalf("anthropic = %v, %v", a, err)
	}
}

func TestPathMatching(t *testing.T) {
	p := Default()
	tests := []struct {
		path string
		want bool
	}{
		{"/v1/models", true},
		{"/v1/models/gpt-4o", true},
		{"/v1/modelsX", false},
		{"/v1/chat/completions", true},
		{"/v1/chat/completionsfoo", false},
		{"/v1/chat", false},
		{"/v1/responses/resp_123", true},
		{"/v1/responses/resp_123/input_items", true},
		{"/v1/images/generations", true},
		{"/v1/audio/transcriptions", true},
		{"/v1/files/file-1/content", true},
		{"/v1/batches", true},
		{"/v1/models/../admin", false},
		{"/v1//models", false},
		{"/v1/models/", false},
		{"/v2/models", false},
		{"/", false},
		{"", false},
		{"/v1/fine_tuning/jobs", false},
	}
	for _, tt := range tests {
		if got := p.AllowsPath(tt.path); got != tt.want {
			t.Errorf("AllowsPath(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
}

func TestWildcardAndCacheEndpoints(t *testing.T) {
	p, err := Parse([]byte(`
apis:
  x:
    base_url: http://vllm:8000/openai/
    allowed_endpoints: ["/v1/threads/{id}/runs", "/v1/images/*"]
    allowed_methods: [POST]
    cache_endpoints: [/v1/embeddings]
`), "")
	if err != nil {
		t.Fatal(err)
	}
	if !p.AllowsPath("/v1/threads/t1/runs") || p.AllowsPath("/v1/threads/t1/messages") || !p.AllowsPath("/v1/images/edits") {
		t.Fatal("wildcard match wrong")
	}
	if !p.CachePath("/v1/embeddings") || p.CachePath("/v1/images/edits") {
		t.Fatal("cache endpoints wrong")
	}
	if p.Endpoint("/v1/threads/t9/runs/r1") != "/v1/threads/{id}/runs" || p.Endpoint("/v1/nope") != "" {
		t.Fatalf("Endpoint = %q", p.Endpoint("/v1/threads/t9/runs/r1"))
	}
	if got := p.UpstreamURL("/v1/chat/completions", "a=b").String(); got != "http://vllm:8000/openai/v1/chat/completions?a=b" {
		t.Fatalf("upstream URL = %s (the base path must be kept)", got)
	}
}

func TestValidationErrors(t *testing.T) {
	base := "apis:\n  x:\n    base_url: https://h\n    allowed_endpoints: [/v1/models]\n    allowed_methods: [GET]\n"
	tests := []struct {
		name, doc, want string
	}{
		{"no apis", "default_api: x\n", "at least one API"},
		{"unknown key", base + "    allowed_endpoint: [/x]\n", "not found"},
		{"missing base", "apis:\n  x:\n    allowed_endpoints: [/v1]\n    allowed_methods: [GET]\n", "base_url: required"},
		{"relative base", strings.Replace(base, "https://h", "api.openai.com", 1), "absolute"},
		{"ftp base", strings.Replace(base, "https://h", "ftp://h", 1), "absolute"},
		{"no endpoints", "apis:\n  x:\n    base_url: https://h\n    allowed_methods: [GET]\n", "allowed_endpoints"},
		{"endpoint without slash", strings.Replace(base, "/v1/models", "v1/models", 1), "must start with /"},
		{"root endpoint", strings.Replace(base, "/v1/models", "/", 1), "every path"},
		{"bad method", strings.Replace(base, "[GET]", "[FETCH]", 1), "allowed_methods[0]"},
		{"bad glob", base + "    param_whitelist:\n      model: [\"gpt-[\"]\n", "param_whitelist.model"},
		{"bad origin", base + "    allowed_origins: [\"https://x.com/path\"]\n", "allowed_origins[0]"},
		{"bad default", "default_api: y\n" + base, "default_api"},
		{"negative timeout", base + "    timeouts:\n      request: -1s\n", "negative"},
		{"bad duration", base + "    timeouts:\n      request: soon\n", "parse"},
		{"ambiguous", base + "  y:\n    base_url: https://h\n    allowed_endpoints: [/v1]\n    allowed_methods: [GET]\n", "no API named"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc), "zzz")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	p, err := Load("", "openai")
	if err != nil || p.BaseURL.String() != DefaultBaseURL {
		t.Fatalf("Load default = %v, %v", p, err)
	}
	dir := t.TempDir()
	f := filepath.Join(dir, "apis.yaml")
	if err := os.WriteFile(f, []byte(originalFile), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(f, "openai"); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml"), "openai"); err == nil {
		t.Fatal("missing file accepted")
	}
	if err := os.WriteFile(f, []byte("apis: ["), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(f, "openai"); err == nil || !strings.Contains(err.Error(), f) {
		t.Fatalf("error should name the file: %v", err)
	}
}

// TestBaseURLForms: a base URL written with /v1, as OpenAI SDKs, vLLM and
// Ollama write it, reaches the same upstream paths as one without it, from
// OPENAI_API_URL (Configured) and from base_url in a provider file.
func TestBaseURLForms(t *testing.T) {
	for _, tc := range []struct{ base, want string }{
		{"https://api.openai.com", "https://api.openai.com/v1/chat/completions"},
		{"https://api.openai.com/", "https://api.openai.com/v1/chat/completions"},
		{"https://api.openai.com/v1", "https://api.openai.com/v1/chat/completions"},
		{"https://api.openai.com/v1/", "https://api.openai.com/v1/chat/completions"},
		{"http://localhost:11434/v1", "http://localhost:11434/v1/chat/completions"},
		{"http://vllm:8000/openai", "http://vllm:8000/openai/v1/chat/completions"},
		{"http://vllm:8000/openai/v1", "http://vllm:8000/openai/v1/chat/completions"},
		{"http://gw/v1beta", "http://gw/v1beta/v1/chat/completions"},
	} {
		t.Run(tc.base, func(t *testing.T) {
			p, err := Configured(config.Proxy{}, config.Upstream{BaseURL: tc.base})
			if err != nil {
				t.Fatal(err)
			}
			if got := p.UpstreamURL("/v1/chat/completions", "").String(); got != tc.want {
				t.Errorf("OPENAI_API_URL=%s: upstream %s, want %s", tc.base, got, tc.want)
			}
			doc := "apis:\n  x:\n    base_url: " + tc.base + "\n    allowed_endpoints: [/v1/chat/completions]\n    allowed_methods: [POST]\n"
			if p, err = Parse([]byte(doc), "x"); err != nil {
				t.Fatal(err)
			}
			if got := p.UpstreamURL("/v1/chat/completions", "").String(); got != tc.want {
				t.Errorf("base_url: %s: upstream %s, want %s", tc.base, got, tc.want)
			}
		})
	}
}
