package web

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

// TestRequestID: our id is always generated, unique and echoed in
// X-Request-ID; a sane client X-Request-ID is kept as the client request id
// and echoed in X-Client-Request-Id, anything else is dropped.
func TestRequestID(t *testing.T) {
	tests := []struct {
		name, sent string
		kept       bool
	}{
		{"sane client id kept as the client's", "client-123_abc.def:9", true},
		{"none sent", "", false},
		{"spaces dropped", "has space", false},
		{"header injection dropped", "a\r\nX-Evil: 1", false},
		{"too long dropped", strings.Repeat("a", 129), false},
	}
	seenIDs := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var id, client string
			h := WithRequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				id, client = RequestID(r.Context()), ClientRequestID(r.Context())
			}))
			req := httptest.NewRequest("GET", "/", nil)
			if tt.sent != "" {
				req.Header["X-Request-Id"] = []string{tt.sent}
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			echoed := rec.Header().Get(RequestIDHeader)
			if echoed == "" || echoed != id || echoed == tt.sent || len(echoed) != 32 || seenIDs[echoed] {
				t.Fatalf("X-Request-ID %q, context %q: want a new id of ours", echoed, id)
			}
			seenIDs[echoed] = true
			wantClient := ""
			if tt.kept {
				wantClient = tt.sent
			}
			if got := rec.Header().Get(ClientRequestIDHeader); got != wantClient || client != wantClient {
				t.Fatalf("X-Client-Request-Id %q, context %q, want %q", got, client, wantClient)
			}
			if _, ok := rec.Header()[ClientRequestIDHeader]; ok != tt.kept {
				t.Fatalf("X-Client-Request-Id present = %v, want %v", ok, tt.kept)
			}
		})
	}
}

func TestClientIP(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	tests := []struct {
		name, remote, xff, want string
	}{
		{"direct client, header ignored", "203.0.113.5:1234", "198.51.100.1", "203.0.113.5"},
		{"trusted proxy: right-most untrusted hop", "10.0.0.2:80", "198.51.100.7, 203.0.113.9, 10.0.0.3", "203.0.113.9"},
		{"trusted proxy without header", "10.0.0.2:80", "", "10.0.0.2"},
		{"garbage hop stops the walk", "10.0.0.2:80", "nonsense", "10.0.0.2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.remote
			if tt.xff != "" {
				r.Header.Set("X-Forwarded-For", tt.xff)
			}
			if got := ClientIP(r, trusted); got != tt.want {
				t.Fatalf("ClientIP = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestHealthReadiness(t *testing.T) {
	down := errors.New("connection refused")
	var dbErr error
	h := Health("v1", time.Second, Check{Name: "database", Check: func(context.Context) error { return dbErr }})
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		return rec.Code, rec.Body.String()
	}
	if code, _ := get("/ready"); code != http.StatusOK {
		t.Fatalf("/ready with a healthy database = %d", code)
	}
	dbErr = down
	code, body := get("/ready")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `"database":"down"`) || strings.Contains(body, "refused") {
		t.Fatalf("/ready with the database down = %d %s (503, no internal detail)", code, body)
	}
	for _, p := range []string{"/health", "/live"} {
		if code, _ := get(p); code != http.StatusOK {
			t.Fatalf("%s must not depend on the database: %d", p, code)
		}
	}
}

func TestErrorsMapToStatusAndHideInternals(t *testing.T) {
	tests := []struct {
		err    error
		status int
		code   string
	}{
		{llmproxy.E(llmproxy.ErrNotFound, llmproxy.CodeNotFound, "project not found"), 404, "not_found"},
		{llmproxy.Wrap(llmproxy.ErrUnavailable, llmproxy.CodeUnavailable, "service temporarily unavailable", errors.New("dial tcp 10.1.2.3")), 503, "service_unavailable"},
		{llmproxy.E(llmproxy.ErrUnauthorized, llmproxy.CodeTokenRevoked, "token has been revoked"), 401, "token_revoked"},
		{errors.New("pq: secret internal detail"), 500, "internal_error"},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		WriteError(rec, httptest.NewRequest("GET", "/", nil), nil, tt.err)
		if rec.Code != tt.status || !strings.Contains(rec.Body.String(), `"code":"`+tt.code+`"`) {
			t.Errorf("%v: %d %s", tt.err, rec.Code, rec.Body.String())
		}
		if strings.Contains(rec.Body.String(), "10.1.2.3") || strings.Contains(rec.Body.String(), "secret internal") {
			t.Errorf("internal detail leaked: %s", rec.Body.String())
		}
		rec = httptest.NewRecorder()
		WriteOpenAIError(rec, httptest.NewRequest("GET", "/", nil), nil, tt.err)
		if rec.Code != tt.status || !strings.Contains(rec.Body.String(), `{"error":{"message":`) {
			t.Errorf("OpenAI shape for %v: %d %s", tt.err, rec.Code, rec.Body.String())
		}
	}
}

func TestDecodeJSON(t *testing.T) {
	tests := []struct {
		name, ct, body string
		kind           error
	}{
		{"ok without content type", "", `{"a":1}`, nil},
		{"ok as curl -d sends it", "application/x-www-form-urlencoded", `{"a":1}`, nil},
		{"empty", "application/json", ``, llmproxy.ErrInvalid},
		{"malformed", "application/json", `{"a":`, llmproxy.ErrInvalid},
		{"trailing data", "application/json", `{"a":1}{"b":2}`, llmproxy.ErrInvalid},
		{"multipart refused", "multipart/form-data; boundary=x", `{"a":1}`, llmproxy.ErrInvalid},
		{"too large", "application/json", `{"a":"` + strings.Repeat("x", MaxJSONBody) + `"}`, llmproxy.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", strings.NewReader(tt.body))
			if tt.ct != "" {
				r.Header.Set("Content-Type", tt.ct)
			}
			var v map[string]any
			err := DecodeJSON(httptest.NewRecorder(), r, &v)
			if tt.kind == nil && err != nil || tt.kind != nil && !errors.Is(err, tt.kind) {
				t.Fatalf("err = %v, want kind %v", err, tt.kind)
			}
		})
	}
}
