package mgmtauth_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/llm-proxy/llm-proxy/internal/testenv"
	"github.com/llm-proxy/llm-proxy/shared/audit"
	"github.com/llm-proxy/llm-proxy/shared/management/managementtest"
	"github.com/llm-proxy/llm-proxy/shared/mgmtauth"
	"github.com/llm-proxy/llm-proxy/shared/store"
)

const secret = "s3cret-management-token"

func TestVerifiers(t *testing.T) {
	t.Parallel()
	sum := sha256.Sum256([]byte(secret))
	for name, v := range map[string]mgmtauth.Verifier{
		"static": mgmtauth.StaticToken(secret),
		"sha256": mgmtauth.SHA256Token(hex.EncodeToString(sum[:])),
	} {
		for _, tc := range []struct {
			token string
			want  bool
		}{{secret, true}, {secret + "x", false}, {secret[:5], false}, {"", false}, {"S3cret-management-token", false}} {
			if got := v(tc.token); got != tc.want {
				t.Errorf("%s(%q) = %v, want %v", name, tc.token, got, tc.want)
			}
		}
	}
	if mgmtauth.StaticToken("")("") {
		t.Error("an empty configured token must accept nothing")
	}
	if mgmtauth.SHA256Token("not-hex")(secret) {
		t.Error("a bad digest must accept nothing")
	}
}

func TestWrap(t *testing.T) {
	t.Parallel()
	env := managementtest.New(t, "sqlite", managementtest.Options{})
	clk := testenv.NewClock(time.Time{})
	a := mgmtauth.New(mgmtauth.StaticToken(secret), mgmtauth.Options{
		Recorder: env.Recorder, FailureLimit: 3, FailureWindow: time.Minute, Clock: clk.Now, Log: env.Log,
	})
	h := a.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	do := func(ip, auth string, xff string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/manage/projects", nil)
		req.RemoteAddr = ip + ":1234"
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		if xff != "" {
			req.Header.Set("X-Forwarded-For", xff)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	code := func(rec *httptest.ResponseRecorder) string {
		var eb struct{ Error, Code string }
		if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || rec.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("not a JSON error: %q %q", rec.Header().Get("Content-Type"), rec.Body.String())
		}
		return eb.Code
	}

	for _, tc := range []struct {
		name, auth string
		status     int
	}{
		{"right", "Bearer " + secret, http.StatusTeapot},
		{"lowercase scheme", "bearer " + secret, http.StatusTeapot},
		{"upper scheme", "BEARER " + secret, http.StatusTeapot},
	} {
		if rec := do("203.0.113.1", tc.auth, ""); rec.Code != tc.status {
			t.Errorf("%s: %d, want %d", tc.name, rec.Code, tc.status)
		}
	}

	// Three failures from one IP (X-Forwarded-For is not trusted, so it
	// cannot be used to spread them), then 429 even with the right token.
	for i, auth := range []string{"", "Bearer wrong", "Basic " + secret} {
		rec := do("192.0.2.10", auth, "10.0.0."+string(rune('1'+i)))
		if rec.Code != http.StatusUnauthorized || code(rec) != "unauthorized" || rec.Header().Get("WWW-Authenticate") == "" {
			t.Fatalf("failure %d: %d %s", i, rec.Code, rec.Body.String())
		}
	}
	for range 5 {
		rec := do("192.0.2.10", "Bearer "+secret, "")
		if rec.Code != http.StatusTooManyRequests || code(rec) != "rate_limit_exceeded" {
			t.Fatalf("blocked: %d %s", rec.Code, rec.Body.String())
		}
		if ra := rec.Header().Get("Retry-After"); ra != "60" {
			t.Fatalf("Retry-After %q", ra)
		}
	}
	// Another client is not affected.
	if rec := do("192.0.2.11", "Bearer "+secret, ""); rec.Code != http.StatusTeapot {
		t.Fatalf("other client: %d", rec.Code)
	}
	// The block ends with the window.
	clk.Advance(30 * time.Second)
	if rec := do("192.0.2.10", "Bearer "+secret, ""); rec.Header().Get("Retry-After") != "30" {
		t.Fatalf("Retry-After after 30s: %q", rec.Header().Get("Retry-After"))
	}
	clk.Advance(31 * time.Second)
	if rec := do("192.0.2.10", "Bearer "+secret, ""); rec.Code != http.StatusTeapot {
		t.Fatalf("after the window: %d", rec.Code)
	}

	// Denied attempts are audited: three failures and one record for the
	// block (not one per refused request).
	evs, n, err := env.Store.ListAudit(context.Background(), store.AuditFilter{Action: "management.auth", Outcome: "denied", ClientIP: "192.0.2.10"})
	if err != nil || n != 4 {
		t.Fatalf("denied records %d (%v): %+v", n, err, evs)
	}
	reasons := map[string]int{}
	for _, e := range evs {
		reasons[e.Reason]++
		if e.Actor != audit.ActorManagementAPI || e.Path != "/manage/projects" || e.Method != "GET" {
			t.Errorf("record %+v", e)
		}
	}
	if reasons["missing or invalid Authorization header"] != 2 || reasons["invalid management token"] != 1 || len(reasons) != 3 {
		t.Fatalf("reasons %v", reasons)
	}
	// Never the token itself.
	for _, e := range evs {
		b, _ := json.Marshal(e)
		if strings.Contains(string(b), secret) || strings.Contains(string(b), "wrong") {
			t.Fatalf("credential in audit record: %s", b)
		}
	}
}
