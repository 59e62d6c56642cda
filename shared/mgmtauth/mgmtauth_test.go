package mgmtauth_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/llm-proxy/llm-proxy/internal/testenv"
	"github.com/llm-proxy/llm-proxy/shared/audit"
	"github.com/llm-proxy/llm-proxy/shared/failbudget"
	"github.com/llm-proxy/llm-proxy/shared/management/managementtest"
	"github.com/llm-proxy/llm-proxy/shared/mgmtauth"
	"github.com/llm-proxy/llm-proxy/shared/store"
)

const secret = "s3cret-management-token-0123456789"

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
		}{{secret, true}, {secret + "x", false}, {secret[:5], false}, {"", false}, {"S3cret-management-token-0123456789", false}} {
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

	// Requests without credentials (what a page of <img> tags on another
	// site makes the admin's browser send) spend no budget: after many of
	// them the right token still works from that address.
	for range 50 {
		if rec := do("192.0.2.10", "", ""); rec.Code != http.StatusUnauthorized || code(rec) != "unauthorized" || rec.Header().Get("WWW-Authenticate") == "" {
			t.Fatalf("no credentials: %d %s", rec.Code, rec.Body.String())
		}
	}
	if rec := do("192.0.2.10", "Bearer "+secret, ""); rec.Code != http.StatusTeapot {
		t.Fatalf("right token after anonymous requests: %d", rec.Code)
	}
	// Three wrong tokens from one IP (X-Forwarded-For is not trusted, so it
	// cannot be used to spread them), then 429 for wrong tokens…
	for i, auth := range []string{"Bearer wrong", "Bearer wrong2", "Bearer wrong3"} {
		rec := do("192.0.2.10", auth, "10.0.0."+string(rune('1'+i)))
		if rec.Code != http.StatusUnauthorized || code(rec) != "unauthorized" || rec.Header().Get("WWW-Authenticate") == "" {
			t.Fatalf("failure %d: %d %s", i, rec.Code, rec.Body.String())
		}
	}
	for range 5 {
		rec := do("192.0.2.10", "Bearer wrong", "")
		if rec.Code != http.StatusTooManyRequests || code(rec) != "rate_limit_exceeded" {
			t.Fatalf("blocked: %d %s", rec.Code, rec.Body.String())
		}
		if ra := rec.Header().Get("Retry-After"); ra != "60" {
			t.Fatalf("Retry-After %q", ra)
		}
	}
	// …but never for the right token from the same address.
	if rec := do("192.0.2.10", "Bearer "+secret, ""); rec.Code != http.StatusTeapot {
		t.Fatalf("right token from a blocked address: %d", rec.Code)
	}
	// Another client is not affected.
	if rec := do("192.0.2.11", "Bearer wrong", ""); rec.Code != http.StatusUnauthorized {
		t.Fatalf("other client: %d", rec.Code)
	}
	// The block ends with the window.
	clk.Advance(30 * time.Second)
	if rec := do("192.0.2.10", "Bearer wrong", ""); rec.Header().Get("Retry-After") != "30" {
		t.Fatalf("Retry-After after 30s: %q", rec.Header().Get("Retry-After"))
	}
	clk.Advance(31 * time.Second)
	if rec := do("192.0.2.10", "Bearer wrong", ""); rec.Code != http.StatusUnauthorized {
		t.Fatalf("after the window: %d", rec.Code)
	}
	// Denied attempts are audited, repeats aggregated (audit.RecordDenial):
	// while the window is open, one record per reason (the wrong tokens, the
	// block, the anonymous requests); the repeats are counted into a summary
	// when it ends.
	evs, n, err := env.Store.ListAudit(context.Background(), store.AuditFilter{Action: "management.auth", Outcome: "denied", ClientIP: "192.0.2.10", Page: store.Page{Size: 100}})
	if err != nil || n != 3 {
		t.Fatalf("denied records %d (%v)", n, err)
	}
	reasons := map[string]int{}
	for _, e := range evs {
		reasons[e.Reason]++
		if e.Actor != audit.ActorManagementAPI || e.Path != "/manage/projects" || e.Method != "GET" {
			t.Errorf("record %+v", e)
		}
	}
	if reasons["invalid management token"] != 1 || reasons["too many failed authentication attempts; retry later"] != 1 || len(reasons) != 3 {
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

// The global budget is shared by every instance behind one Redis: wrong
// tokens from many addresses, spread over two instances, spend it, after
// which wrong tokens get 429 everywhere while the right token still works;
// the spent budget is logged once and counted in the metrics.
func TestGlobalBudgetAcrossInstances(t *testing.T) {
	t.Parallel()
	rdb, prefix := testenv.Redis(t)
	metrics := failbudget.NewMetrics()
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.Collectors()...)
	logs := &testenv.Buffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	newInstance := func() http.Handler {
		a := mgmtauth.New(mgmtauth.StaticToken(secret), mgmtauth.Options{
			FailureLimit: 3, GlobalFailureLimit: 8, FailureWindow: time.Minute,
			Redis: rdb, KeyPrefix: prefix, Metrics: metrics, Log: log,
		})
		return a.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	}
	instances := []http.Handler{newInstance(), newInstance()}
	do := func(i int, ip, token string) int {
		req := httptest.NewRequest("GET", "/manage/projects", nil)
		req.RemoteAddr = ip + ":1234"
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		instances[i].ServeHTTP(rec, req)
		return rec.Code
	}
	for i := range 8 { // two per address, alternating instances: no client budget is spent
		if c := do(i%2, "198.51.100."+strconv.Itoa(i/2), "wrong"); c != http.StatusUnauthorized {
			t.Fatalf("wrong token %d: %d", i, c)
		}
	}
	for i := range 2 {
		if c := do(i, "198.51.100.99", "wrong"); c != http.StatusTooManyRequests {
			t.Fatalf("instance %d after the global budget: %d, want 429", i, c)
		}
		if c := do(i, "198.51.100.99", secret); c != http.StatusTeapot {
			t.Fatalf("instance %d: right token refused: %d", i, c)
		}
	}
	if n := strings.Count(logs.String(), "authentication failure budget spent"); n != 1 || !strings.Contains(logs.String(), `"scope":"global"`) {
		t.Fatalf("want one log line for the spent global budget, got %d: %s", n, logs.String())
	}
	if v := testenv.Counter(t, reg, "llm_proxy_auth_budget_exhausted_total", "surface", "management_api", "scope", "global"); v != 1 {
		t.Fatalf("budget_exhausted_total = %v", v)
	}
	if v := testenv.Counter(t, reg, "llm_proxy_auth_failures_total", "result", "blocked"); v != 2 {
		t.Fatalf("blocked failures = %v", v)
	}
	keys, err := rdb.Keys(context.Background(), prefix+"failbudget:management_api:*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("no budget keys under REDIS_KEY_PREFIX: %v %v", keys, err)
	}
}
