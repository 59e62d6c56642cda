package web

import (
	"bytes"
	"context"
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

// TestAccessLogOneLineHoweverItEnds: a normal return, a panic, an aborted
// handler (http.ErrAbortHandler, as the reverse proxy aborts a stream whose
// client left) and a handler's own account (SetOutcome) each leave exactly
// one access-log line, with the status the request ended with.
func TestAccessLogOneLineHoweverItEnds(t *testing.T) {
	for _, tc := range []struct {
		name        string
		clientGone  bool
		handler     http.HandlerFunc
		wantStatus  float64
		wantLevel   string
		wantCode    string
		wantAborted bool
		wantPanic   bool
	}{
		{name: "normal", handler: func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") },
			wantStatus: 200, wantLevel: "INFO"},
		{name: "wrote nothing", handler: func(http.ResponseWriter, *http.Request) {}, wantStatus: 200, wantLevel: "INFO"},
		{name: "panic", handler: func(http.ResponseWriter, *http.Request) { panic("boom") }, wantStatus: 500, wantLevel: "WARN"},
		{name: "abort after the headers, client gone", clientGone: true, handler: func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "data: {}\n\n")
			panic(http.ErrAbortHandler)
		}, wantStatus: 499, wantLevel: "INFO", wantAborted: true, wantPanic: true},
		{name: "abort before the headers", handler: func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) },
			wantStatus: 500, wantLevel: "WARN", wantAborted: true, wantPanic: true},
		{name: "outcome of a cut stream", handler: func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "data: {}\n\n")
			if !SetOutcome(&wrapper{w}, http.StatusBadGateway, "upstream_stream_interrupted") {
				t.Error("SetOutcome found no recorder")
			}
		}, wantStatus: 502, wantLevel: "WARN", wantCode: "upstream_stream_interrupted"},
		{name: "outcome of an aborted stream", clientGone: true, handler: func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "data: {}\n\n")
			SetOutcome(w, 499, "client_closed_request")
			panic(http.ErrAbortHandler)
		}, wantStatus: 499, wantLevel: "INFO", wantCode: "client_closed_request", wantAborted: true, wantPanic: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			h := Chain(slog.New(slog.NewJSONHandler(&buf, nil)), tc.handler)
			req := httptest.NewRequest("POST", "/v1/chat/completions", nil)
			if tc.clientGone {
				ctx, cancel := context.WithCancel(req.Context())
				cancel()
				req = req.WithContext(ctx)
			}
			var rec httptest.ResponseRecorder
			rec.HeaderMap = http.Header{}
			panicked := func() (v any) {
				defer func() { v = recover() }()
				h.ServeHTTP(&rec, req)
				return nil
			}()
			if (panicked != nil) != tc.wantPanic || (panicked != nil && panicked != http.ErrAbortHandler) {
				t.Errorf("panic after the handler = %v, want panic %v", panicked, tc.wantPanic)
			}
			lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
			var access [][]byte
			for _, l := range lines {
				if bytes.Contains(l, []byte(`"msg":"http request"`)) {
					access = append(access, l)
				}
			}
			if len(access) != 1 {
				t.Fatalf("%d access-log lines, want 1: %s", len(access), buf.String())
			}
			var m map[string]any
			if err := json.Unmarshal(access[0], &m); err != nil {
				t.Fatal(err)
			}
			code, _ := m["error_code"].(string)
			aborted, _ := m["aborted"].(bool)
			if m["status"] != tc.wantStatus || m["level"] != tc.wantLevel || code != tc.wantCode || aborted != tc.wantAborted ||
				m["request_id"] != rec.Header().Get(RequestIDHeader) {
				t.Errorf("line = %s; want status %v, level %s, error_code %q, aborted %v", access[0], tc.wantStatus, tc.wantLevel, tc.wantCode, tc.wantAborted)
			}
		})
	}
}

// wrapper is a middleware's writer between AccessLog and a handler.
type wrapper struct{ http.ResponseWriter }

func (w *wrapper) Unwrap() http.ResponseWriter { return w.ResponseWriter }
