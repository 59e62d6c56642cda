package adminui

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llm-proxy/llm-proxy/shared/audit"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/management"
	"github.com/llm-proxy/llm-proxy/shared/mgmtapi"
	"github.com/llm-proxy/llm-proxy/shared/store"
)

// failingService fails GetProject with err; nothing else is called.
type failingService struct {
	Service
	err error
}

func (f failingService) GetProject(context.Context, management.Actor, string) (mgmtapi.Project, error) {
	return mgmtapi.Project{}, f.err
}

func (failingService) Recorder() *audit.Recorder { return nil }

// secret is an internal cause: it must reach the log, never the page.
const secret = "dial tcp 10.1.2.3:5432: secret internal detail"

// TestErrorPagesForEachKind: an error a page handler returns, of each
// domain kind, becomes an HTML error page with the kind's status and the
// client-safe message, logged once (5xx at error level, 4xx at debug); an
// internal cause never reaches the page. The session and form refusals of
// authed take the same path.
func TestErrorPagesForEachKind(t *testing.T) {
	key := strings.Repeat("ab", 32)
	tests := []struct {
		name     string
		err      error
		method   string
		body     string // a form; "" sends none
		signedIn bool
		status   int
		message  string
	}{
		{"invalid", llmproxy.Wrap(llmproxy.ErrInvalid, llmproxy.CodeInvalidRequest, "Name is required.", errors.New(secret)), "GET", "", true, 400, "Name is required."},
		{"forbidden", llmproxy.E(llmproxy.ErrForbidden, llmproxy.CodeProjectInactive, "The project is inactive."), "GET", "", true, 403, "The project is inactive."},
		{"not found", llmproxy.Wrap(llmproxy.ErrNotFound, llmproxy.CodeNotFound, "project not found", errors.New(secret)), "GET", "", true, 404, "project not found"},
		{"conflict", llmproxy.Wrap(llmproxy.ErrConflict, llmproxy.CodeConflict, "The name is taken.", errors.New(secret)), "GET", "", true, 409, "The name is taken."},
		{"rate limited", llmproxy.E(llmproxy.ErrRateLimited, llmproxy.CodeRateLimitExceeded, "Slow down."), "GET", "", true, 429, "Slow down."},
		{"unavailable", fmt.Errorf("get project: %w: %s", llmproxy.ErrUnavailable, secret), "GET", "", true, 503, "service temporarily unavailable"},
		{"internal", fmt.Errorf("get project: %s", secret), "GET", "", true, 500, "internal error"},
		{"session ended on a form post", nil, "POST", "csrf_token=x", false, 403, "Your session has ended. Sign in again, then repeat the action."},
		{"unreadable form", nil, "POST", "a=%zz", true, 400, "The form could not be read."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			st := &memSessions{m: map[string]store.AdminSession{}}
			h, err := New(Deps{
				Service: failingService{err: tt.err}, Reader: struct{ Reader }{}, Sessions: st,
				VerifyManagementToken: func(string) bool { return false },
				Config:                config.Admin{SessionKey: key},
				Log:                   slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
			})
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest(tt.method, "/projects/p1", strings.NewReader(tt.body))
			if tt.body != "" {
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			if tt.signedIn {
				r.AddCookie(sessionCookie(t, st))
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			page := rec.Body.String()
			if rec.Code != tt.status || !strings.Contains(page, tt.message) || !strings.Contains(page, http.StatusText(tt.status)) {
				t.Errorf("status %d, want %d with %q; page:\n%s", rec.Code, tt.status, tt.message, page)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
			if strings.Contains(page, "10.1.2.3") || strings.Contains(page, "secret") {
				t.Errorf("internal detail reached the page:\n%s", page)
			}
			lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
			if len(lines) != 1 {
				t.Fatalf("%d log lines, want 1:\n%s", len(lines), logs.String())
			}
			var l struct{ Level, Error string }
			if err := json.Unmarshal([]byte(lines[0]), &l); err != nil {
				t.Fatal(err)
			}
			want := "DEBUG"
			if tt.status >= 500 {
				want = "ERROR"
			}
			if l.Level != want || (tt.err != nil && l.Error != tt.err.Error()) {
				t.Errorf("logged %s %q, want %s %v", l.Level, l.Error, want, tt.err)
			}
		})
	}
}

// sessionCookie is the cookie of a fresh session in st, whose form token
// is "form-token".
func sessionCookie(t *testing.T, st *memSessions) *http.Cookie {
	t.Helper()
	now := time.Now()
	if err := st.CreateAdminSession(context.Background(), store.AdminSession{IDHash: hashID("s1"), CSRF: "form-token", CreatedAt: now, LastSeenAt: now}); err != nil {
		t.Fatal(err)
	}
	return &http.Cookie{Name: CookieName, Value: "s1"}
}

// memSessions is a SessionStore in memory.
type memSessions struct {
	mu sync.Mutex
	m  map[string]store.AdminSession
}

func (s *memSessions) CreateAdminSession(_ context.Context, a store.AdminSession) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[a.IDHash] = a
	return nil
}

func (s *memSessions) GetAdminSession(_ context.Context, id string) (store.AdminSession, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.m[id]
	if !ok {
		return a, llmproxy.E(llmproxy.ErrNotFound, llmproxy.CodeNotFound, "admin session not found")
	}
	return a, nil
}

func (s *memSessions) TouchAdminSession(_ context.Context, id string, seen time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.m[id]
	if !ok {
		return llmproxy.E(llmproxy.ErrNotFound, llmproxy.CodeNotFound, "admin session not found")
	}
	a.LastSeenAt = seen
	s.m[id] = a
	return nil
}

func (s *memSessions) DeleteAdminSession(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
	return nil
}

func (s *memSessions) DeleteAdminSessions(_ context.Context, p store.AdminSessionPurge) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for id, a := range s.m {
		if p.All || (p.KeepFingerprint != "" && a.TokenFingerprint != p.KeepFingerprint) ||
			a.CreatedAt.Before(p.CreatedBefore) || a.LastSeenAt.Before(p.SeenBefore) {
			delete(s.m, id)
			n++
		}
	}
	return n, nil
}
