package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

// secret is the internal cause every failure below carries; it must reach
// the log and never the client.
const secret = "dial tcp 10.1.2.3:5432: secret internal detail"

// failures are an error of each domain kind (and a plain internal one),
// with the status and the client-safe message and code they answer with.
var failures = []struct {
	name    string
	err     error
	status  int
	message string
	code    string
}{
	{"invalid", llmproxy.Wrap(llmproxy.ErrInvalid, llmproxy.CodeInvalidRequest, "name is required", errors.New(secret)), 400, "name is required", "invalid_request"},
	{"unauthorized", llmproxy.Wrap(llmproxy.ErrUnauthorized, llmproxy.CodeTokenRevoked, "token has been revoked", errors.New(secret)), 401, "token has been revoked", "token_revoked"},
	{"forbidden", llmproxy.E(llmproxy.ErrForbidden, llmproxy.CodeProjectInactive, "project is inactive"), 403, "project is inactive", "project_inactive"},
	{"not found", llmproxy.Wrap(llmproxy.ErrNotFound, llmproxy.CodeNotFound, "project not found", errors.New(secret)), 404, "project not found", "not_found"},
	{"method not allowed", llmproxy.E(llmproxy.ErrMethodNotAllowed, llmproxy.CodeMethodNotAllowed, "method not allowed"), 405, "method not allowed", "method_not_allowed"},
	{"conflict", llmproxy.Wrap(llmproxy.ErrConflict, llmproxy.CodeConflict, "name taken", errors.New(secret)), 409, "name taken", "conflict"},
	{"too large", llmproxy.E(llmproxy.ErrTooLarge, llmproxy.CodeTooLarge, "body too large"), 413, "body too large", "request_too_large"},
	{"rate limited", llmproxy.E(llmproxy.ErrRateLimited, llmproxy.CodeQuotaExceeded, "quota exhausted"), 429, "quota exhausted", "quota_exceeded"},
	{"unavailable", llmproxy.Wrap(llmproxy.ErrUnavailable, llmproxy.CodeUnavailable, "service temporarily unavailable", errors.New(secret)), 503, "service temporarily unavailable", "service_unavailable"},
	{"bare unavailable", fmt.Errorf("get project: %w: %s", llmproxy.ErrUnavailable, secret), 503, "service temporarily unavailable", "service_unavailable"},
	{"internal", fmt.Errorf("list projects: %s", secret), 500, "internal error", "internal_error"},
}

// logRecord is a JSON log line.
type logRecord struct {
	Level  string `json:"level"`
	Msg    string `json:"msg"`
	Status int    `json:"status"`
	Error  string `json:"error"`
	Method string `json:"method"`
	Path   string `json:"path"`
}

// serveFailure serves a handler returning err through s (with a debug
// logger writing to the returned lines) and returns the answer.
func serveFailure(t *testing.T, render Renderer, err error) (*httptest.ResponseRecorder, []logRecord) {
	t.Helper()
	var logs bytes.Buffer
	s := Surface{Render: render, Log: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	rec := httptest.NewRecorder()
	s.Handle(func(http.ResponseWriter, *http.Request) error { return err }).
		ServeHTTP(rec, httptest.NewRequest("PATCH", "/manage/projects/p1", nil))
	var lines []logRecord
	for line := range strings.Lines(logs.String()) {
		var l logRecord
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		lines = append(lines, l)
	}
	return rec, lines
}

// checkLoggedOnce checks the one log line of a failure: its level follows
// the status, and it carries the cause.
func checkLoggedOnce(t *testing.T, lines []logRecord, status int, err error) {
	t.Helper()
	if len(lines) != 1 {
		t.Fatalf("%d log lines, want 1: %+v", len(lines), lines)
	}
	want := "DEBUG"
	if status >= 500 {
		want = "ERROR"
	}
	l := lines[0]
	if l.Level != want || l.Status != status || l.Error != err.Error() || l.Method != "PATCH" || l.Path != "/manage/projects/p1" {
		t.Errorf("log line %+v, want level %s, status %d, error %q", l, want, status, err.Error())
	}
}

func TestSurfacesRenderEachKind(t *testing.T) {
	surfaces := []struct {
		name   string
		render Renderer
		ctype  string
		body   func(status int, message, code string) string
	}{
		{"management JSON", ManagementJSON, "application/json", func(_ int, message, code string) string {
			return `{"error":"` + message + `","code":"` + code + `"}` + "\n"
		}},
		{"OpenAI JSON", OpenAIJSON, "application/json", func(status int, message, code string) string {
			return `{"error":{"message":"` + message + `","type":"` + openAIType(status) + `","param":null,"code":"` + code + `"}}` + "\n"
		}},
	}
	for _, sf := range surfaces {
		for _, f := range failures {
			t.Run(sf.name+"/"+f.name, func(t *testing.T) {
				rec, lines := serveFailure(t, sf.render, f.err)
				if rec.Code != f.status {
					t.Errorf("status %d, want %d", rec.Code, f.status)
				}
				if got, want := rec.Body.String(), sf.body(f.status, f.message, f.code); got != want {
					t.Errorf("body %s, want %s", got, want)
				}
				if ct := rec.Header().Get("Content-Type"); ct != sf.ctype {
					t.Errorf("Content-Type %q", ct)
				}
				if strings.Contains(rec.Body.String(), "10.1.2.3") || strings.Contains(rec.Body.String(), "secret") {
					t.Errorf("internal detail reached the client: %s", rec.Body.String())
				}
				checkLoggedOnce(t, lines, f.status, f.err)
			})
		}
	}
}

func TestSurfaceSuccessIsNotLogged(t *testing.T) {
	var logs bytes.Buffer
	s := Surface{Render: ManagementJSON, Log: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	rec := httptest.NewRecorder()
	s.Handle(func(w http.ResponseWriter, _ *http.Request) error {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}).ServeHTTP(rec, httptest.NewRequest("DELETE", "/manage/tokens/t1", nil))
	if rec.Code != http.StatusNoContent || rec.Body.Len() != 0 || logs.Len() != 0 {
		t.Errorf("%d %q, logged %q", rec.Code, rec.Body.String(), logs.String())
	}
}

// TestFailureLevelPolicy: at the default info level a client error is not
// logged at all and a server failure is, once, at error level; FailStatus
// logs and answers with the status its caller decided.
func TestFailureLevelPolicy(t *testing.T) {
	tests := []struct {
		status int
		lines  int
	}{{400, 0}, {401, 0}, {404, 0}, {429, 0}, {500, 1}, {502, 1}, {503, 1}, {504, 1}}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			var logs bytes.Buffer
			s := Surface{Render: OpenAIJSON, Log: slog.New(slog.NewJSONHandler(&logs, nil))}
			rec := httptest.NewRecorder()
			s.FailStatus(rec, httptest.NewRequest("POST", "/v1/chat/completions", nil), tt.status, errors.New(secret))
			if rec.Code != tt.status {
				t.Errorf("status %d", rec.Code)
			}
			if n := strings.Count(logs.String(), "\n"); n != tt.lines {
				t.Errorf("%d log lines, want %d: %s", n, tt.lines, logs.String())
			}
			if tt.lines > 0 && !strings.Contains(logs.String(), `"level":"ERROR"`) {
				t.Errorf("not at error level: %s", logs.String())
			}
		})
	}
}

// TestFailOpenAI: the proxy's direct path answers and logs as the OpenAI
// surface does, and costs no allocation beyond the body's own (the request
// stays where its caller put it).
func TestFailOpenAI(t *testing.T) {
	for _, f := range failures {
		want, wantLogs := serveFailure(t, OpenAIJSON, f.err)
		var logs bytes.Buffer
		rec := httptest.NewRecorder()
		FailOpenAI(rec, httptest.NewRequest("PATCH", "/manage/projects/p1", nil),
			slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), f.status, f.err)
		if rec.Code != want.Code || rec.Body.String() != want.Body.String() || strings.Count(logs.String(), "\n") != len(wantLogs) {
			t.Errorf("%s: %d %s, logged %q; the surface: %d %s", f.name, rec.Code, rec.Body, logs.String(), want.Code, want.Body)
		}
	}
	w := discardWriter{http.Header{}}
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	u := httptest.NewRequest("POST", "/v1/chat/completions", nil).URL
	err := llmproxy.E(llmproxy.ErrUnauthorized, llmproxy.CodeInvalidToken, "invalid token")
	body := testing.AllocsPerRun(100, func() { WriteOpenAIBody(w, 401, llmproxy.ErrorCode(err), llmproxy.ErrorMessage(err)) })
	fail := testing.AllocsPerRun(100, func() {
		r := http.Request{Method: "POST", URL: u}
		FailOpenAI(w, &r, log, 401, err)
	})
	if fail != body {
		t.Errorf("FailOpenAI: %v allocations, the body alone %v", fail, body)
	}
}

type discardWriter struct{ h http.Header }

func (d discardWriter) Header() http.Header         { return d.h }
func (d discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d discardWriter) WriteHeader(int)             {}
