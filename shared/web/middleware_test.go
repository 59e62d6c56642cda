package web

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestAccessLogFields: one line per request with every field (our request
// id, the client's when it sent one), 499 for a client that went away, warn for 5xx, nothing below the logger's level.
func TestAccessLogFields(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil)).With("function", "test")
	h := Chain(log, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_, _ = io.WriteString(w, "hello")
	}))
	ok := httptest.NewRequest("GET", "/ok", nil)
	ok.Header.Set("X-Request-ID", "client-7")
	okRec := httptest.NewRecorder()
	h.ServeHTTP(okRec, ok)
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/fail", nil))
	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if len(lines) != 2 {
		t.Fatalf("%d lines: %s", len(lines), buf.String())
	}
	for i, want := range []struct {
		level, method, path string
		status              float64
	}{{"INFO", "GET", "/ok", 200}, {"WARN", "POST", "/fail", 503}} {
		var m map[string]any
		if err := json.Unmarshal(lines[i], &m); err != nil {
			t.Fatal(err)
		}
		if m["msg"] != "http request" || m["level"] != want.level || m["method"] != want.method || m["path"] != want.path ||
			m["status"] != want.status || m["bytes"] != float64(5) || m["function"] != "test" || m["time"] == nil {
			t.Errorf("line %d = %s", i, lines[i])
		}
		if id, _ := m["request_id"].(string); id == "" || id == "client-7" {
			t.Errorf("line %d has no request_id of ours: %s", i, lines[i])
		}
		if i == 0 && (m["request_id"] != okRec.Header().Get(RequestIDHeader) || m["client_request_id"] != "client-7") {
			t.Errorf("line %d: request_id %v, client_request_id %v; the response said %q and %q", i,
				m["request_id"], m["client_request_id"], okRec.Header().Get(RequestIDHeader), okRec.Header().Get(ClientRequestIDHeader))
		}
		if _, ok := m["client_request_id"]; i == 1 && ok {
			t.Errorf("line %d: client_request_id without one sent: %s", i, lines[i])
		}
		if d, ok := m["duration"].(float64); !ok || d <= 0 {
			t.Errorf("line %d duration = %v", i, m["duration"])
		}
	}

	buf.Reset()
	quiet := Chain(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn})),
		http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	quiet.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/ok", nil))
	if buf.Len() != 0 {
		t.Errorf("logged below the level: %s", buf.String())
	}
}

func BenchmarkAccessLog(b *testing.B) {
	log := slog.New(slog.NewJSONHandler(io.Discard, nil)).With("function", "proxy")
	h := WithRequestID(AccessLog(log, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "hello")
	})))
	req := httptest.NewRequest("POST", "/v1/chat/completions", nil)
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, req)
	}
}
