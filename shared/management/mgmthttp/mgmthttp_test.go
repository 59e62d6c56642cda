package mgmthttp

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

// TestServeAnswersEveryErrorAsJSON: a route's returned error, the mux's own
// 404 and 405 and a MethodNotAllowed route all answer with the management
// JSON body, logged once; an internal cause never reaches the client.
func TestServeAnswersEveryErrorAsJSON(t *testing.T) {
	routes := []Route{
		{Pattern: "GET /things", Handle: func(w http.ResponseWriter, _ *http.Request) error {
			w.WriteHeader(http.StatusOK)
			return nil
		}},
		{Pattern: "GET /things/{id}", Handle: func(http.ResponseWriter, *http.Request) error {
			return llmproxy.Wrap(llmproxy.ErrNotFound, llmproxy.CodeNotFound, "thing not found", errors.New("pg: secret cause"))
		}},
		{Pattern: "POST /things/{id}", Handle: func(http.ResponseWriter, *http.Request) error {
			return fmt.Errorf("update thing: pg: secret cause")
		}},
		{Pattern: "/things/{id}", Handle: MethodNotAllowed("GET, POST")},
		{Pattern: "GET /other", Handle: func(http.ResponseWriter, *http.Request) error { return nil }},
	}
	tests := []struct {
		method, path string
		status       int
		body, allow  string
		logs         int // at info level: server failures only
	}{
		{"GET", "/things", 200, "", "", 0},
		{"GET", "/things/1", 404, `{"error":"thing not found","code":"not_found"}`, "", 0},
		{"POST", "/things/1", 500, `{"error":"internal error","code":"internal_error"}`, "", 1},
		{"DELETE", "/things/1", 405, `{"error":"method not allowed","code":"method_not_allowed"}`, "GET, POST", 0},
		{"GET", "/things/1/more", 404, `{"error":"not found","code":"not_found"}`, "", 0},
		{"POST", "/things", 405, `{"error":"method not allowed","code":"method_not_allowed"}`, "GET, HEAD", 0},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
				var logs bytes.Buffer
				h := Serve([]string{"/things", "/other"}, routes, slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: level})))
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
				if rec.Code != tt.status || strings.TrimSuffix(rec.Body.String(), "\n") != tt.body || rec.Header().Get("Allow") != tt.allow {
					t.Errorf("%d %q Allow %q, want %d %q Allow %q", rec.Code, rec.Body.String(), rec.Header().Get("Allow"), tt.status, tt.body, tt.allow)
				}
				if strings.Contains(rec.Body.String(), "secret") {
					t.Errorf("internal cause reached the client: %s", rec.Body.String())
				}
				want := tt.logs
				if level == slog.LevelDebug && tt.status >= 400 {
					want = 1 // every failure, once
				}
				if n := strings.Count(logs.String(), "\n"); n != want {
					t.Errorf("at %v: %d log lines, want %d: %s", level, n, want, logs.String())
				}
			}
		})
	}
}

// TestServeRefusesDrift: a route outside the function's paths, or a path
// without a route, is a programming error caught when the handler is built.
func TestServeRefusesDrift(t *testing.T) {
	ok := func(http.ResponseWriter, *http.Request) error { return nil }
	tests := []struct {
		name   string
		paths  []string
		routes []Route
		panics bool
	}{
		{"every route under a path", []string{"/a", "/b"}, []Route{{"GET /a", ok}, {"/a/{id}", ok}, {"POST /b/x", ok}}, false},
		{"route outside", []string{"/a"}, []Route{{"GET /a", ok}, {"GET /b", ok}}, true},
		{"prefix is not a path boundary", []string{"/a"}, []Route{{"GET /a", ok}, {"GET /ab", ok}}, true},
		{"path without route", []string{"/a", "/b"}, []Route{{"GET /a", ok}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if got := recover() != nil; got != tt.panics {
					t.Errorf("panicked %v, want %v", got, tt.panics)
				}
			}()
			Serve(tt.paths, tt.routes, nil)
		})
	}
}

// TestMount: a mounted prefix routes itself and everything below it to the
// function, and nothing that merely starts with the same letters.
func TestMount(t *testing.T) {
	mux := http.NewServeMux()
	fn := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	Mount(mux, fn, []string{"/manage/usage", "/manage/cache"})
	tests := []struct {
		path string
		here bool
	}{
		{"/manage/usage", true}, {"/manage/usage/x", true}, {"/manage/cache", true}, {"/manage/cache/purge", true},
		{"/manage/usagex", false}, {"/manage/tokens", false}, {"/manage", false},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", tt.path, nil))
		if got := rec.Code == http.StatusTeapot; got != tt.here {
			t.Errorf("%s: reached the function %v, want %v", tt.path, got, tt.here)
		}
	}
}
