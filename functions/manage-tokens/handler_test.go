package managetokens_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	managetokens "github.com/llm-proxy/llm-proxy/functions/manage-tokens"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/management"
	"github.com/llm-proxy/llm-proxy/shared/management/managementtest"
	"github.com/llm-proxy/llm-proxy/shared/mgmtapi"
	"github.com/llm-proxy/llm-proxy/shared/store"
)

const upstreamKey = "sk-proj-UPSTREAMsecretKEY1234567890abcdef"

type response struct {
	status int
	header http.Header
	body   string
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(r.body), v); err != nil {
		t.Fatalf("decode %q: %v", r.body, err)
	}
}

func (r response) errBody() (msg, code string) {
	var eb struct{ Error, Code string }
	_ = json.Unmarshal([]byte(r.body), &eb)
	return eb.Error, eb.Code
}

// client records every response body so that a test can check none of them
// leaks a secret.
type client struct {
	h      http.Handler
	bodies []string
}

func (c *client) do(t *testing.T, method, path, body string) response {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+managementtest.ManagementToken)
	rec := httptest.NewRecorder()
	c.h.ServeHTTP(rec, req)
	r := response{status: rec.Code, header: rec.Header(), body: rec.Body.String()}
	// The creation answer is the one place the plaintext token may appear.
	if !(method == "POST" && r.status == http.StatusCreated) {
		c.bodies = append(c.bodies, r.body)
	}
	if r.status >= 400 {
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: error Content-Type %q", method, path, ct)
		}
		if msg, code := r.errBody(); msg == "" || code == "" {
			t.Errorf("%s %s: error body %q is not {error,code}", method, path, r.body)
		}
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("%s %s: Cache-Control %q", method, path, r.header.Get("Cache-Control"))
	}
	return r
}

type step struct {
	name   string
	method string
	path   string // {p} active project, {q} inactive project, {t} token, {missing}
	body   string
	status int
	code   string
	msg    string
	check  func(t *testing.T, r response)
}

func TestAPI(t *testing.T) {
	t.Parallel()
	for _, engine := range managementtest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			testAPI(t, engine)
		})
	}
}

func testAPI(t *testing.T, engine string) {
	env := managementtest.New(t, engine, managementtest.Options{})
	c := &client{h: managetokens.New(managetokens.Deps{Service: env.Service, Auth: env.Auth, Log: env.Log})}
	ctx := context.Background()
	a := managementtest.Actor()
	p, err := env.Service.CreateProject(ctx, a, management.CreateProjectInput{Name: "alpha", APIKey: upstreamKey,
		TokenDefaults: &llmproxy.Limits{RequestsPerMinute: 7}})
	if err != nil {
		t.Fatal(err)
	}
	q, err := env.Service.CreateProject(ctx, a, management.CreateProjectInput{Name: "beta", APIKey: upstreamKey})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Service.UpdateProject(ctx, a, q.ID, management.UpdateProjectInput{IsActive: new(false)}); err != nil {
		t.Fatal(err)
	}
	missing := "00000000-0000-4000-8000-000000000000"
	var plaintexts []string
	var tokID string

	created := func(minutes float64) func(t *testing.T, r response) {
		return func(t *testing.T, r response) {
			var ct mgmtapi.CreatedToken
			r.json(t, &ct)
			if !strings.HasPrefix(ct.Token, "llmp_") || ct.ID == "" || ct.ExpiresAt == nil || ct.ProjectID != p.ID {
				t.Fatalf("created %+v", ct)
			}
			if got := time.Until(*ct.ExpiresAt).Minutes(); got < minutes-2 || got > minutes+1 {
				t.Fatalf("expires in %.1f min, want %.0f", got, minutes)
			}
			plaintexts = append(plaintexts, ct.Token)
			tokID = ct.ID
		}
	}
	steps := []step{
		{name: "create minutes", method: "POST", path: "/manage/tokens", body: `{"project_id":"{p}","duration_minutes":60}`, status: 201, check: func(t *testing.T, r response) {
			created(60)(t, r)
			var raw map[string]any
			r.json(t, &raw)
			if _, ok := raw["max_requests"]; ok {
				t.Fatalf("max_requests present for unlimited token: %s", r.body)
			}
			var ct mgmtapi.CreatedToken
			r.json(t, &ct)
			if ct.Limits.RequestsPerMinute != 7 {
				t.Fatalf("token_defaults not applied: %+v", ct.Limits)
			}
		}},
		{name: "create duration string", method: "POST", path: "/manage/tokens", body: `{"project_id":"{p}","duration":"24h","max_requests":5}`, status: 201, check: func(t *testing.T, r response) {
			created(24*60)(t, r)
			var ct mgmtapi.CreatedToken
			r.json(t, &ct)
			if ct.MaxRequests == nil || *ct.MaxRequests != 5 {
				t.Fatalf("max_requests %v", ct.MaxRequests)
			}
		}},
		{name: "create days", method: "POST", path: "/manage/tokens", body: `{"project_id":"{p}","duration":"30d"}`, status: 201, check: created(30 * 24 * 60)},
		{name: "create expires_at", method: "POST", path: "/manage/tokens", body: `{"projectId":"{p}","expires_at":"` + time.Now().Add(2*time.Hour).UTC().Format(time.RFC3339) + `","limits":{"requests_per_day":3}}`, status: 201, check: func(t *testing.T, r response) {
			created(120)(t, r)
			var ct mgmtapi.CreatedToken
			r.json(t, &ct)
			if ct.Limits.RequestsPerDay != 3 || ct.Limits.RequestsPerMinute != 0 {
				t.Fatalf("explicit limits %+v", ct.Limits)
			}
		}},
		{name: "create no lifetime", method: "POST", path: "/manage/tokens", body: `{"project_id":"{p}"}`, status: 400, code: "invalid_request"},
		{name: "create zero minutes", method: "POST", path: "/manage/tokens", body: `{"project_id":"{p}","duration_minutes":0}`, status: 400, code: "invalid_request", msg: "project_id and duration_minutes are required"},
		{name: "create too long", method: "POST", path: "/manage/tokens", body: `{"project_id":"{p}","duration_minutes":525601}`, status: 400, code: "invalid_request", msg: "duration_minutes exceeds maximum allowed"},
		{name: "create max lifetime", method: "POST", path: "/manage/tokens", body: `{"project_id":"{p}","duration_minutes":525600}`, status: 201, check: created(525600)},
		{name: "create bad duration", method: "POST", path: "/manage/tokens", body: `{"project_id":"{p}","duration":"soon"}`, status: 400, code: "invalid_request"},
		{name: "create two lifetimes", method: "POST", path: "/manage/tokens", body: `{"project_id":"{p}","duration":"1h","duration_minutes":5}`, status: 400, code: "invalid_request"},
		{name: "create past expiry", method: "POST", path: "/manage/tokens", body: `{"project_id":"{p}","expires_at":"2001-01-01T00:00:00Z"}`, status: 400, code: "invalid_request"},
		{name: "create no project", method: "POST", path: "/manage/tokens", body: `{"duration_minutes":5}`, status: 400, code: "invalid_request", msg: "project_id is required"},
		{name: "create negative max", method: "POST", path: "/manage/tokens", body: `{"project_id":"{p}","duration_minutes":5,"max_requests":-1}`, status: 400, code: "invalid_request", msg: "max_requests must be >= 0"},
		{name: "create unknown project", method: "POST", path: "/manage/tokens", body: `{"project_id":"{missing}","duration_minutes":5}`, status: 404, code: "not_found", msg: "project not found"},
		{name: "create inactive project", method: "POST", path: "/manage/tokens", body: `{"project_id":"{q}","duration_minutes":5}`, status: 403, code: "project_inactive", msg: "cannot create tokens for inactive projects"},
		{name: "create bad json", method: "POST", path: "/manage/tokens", body: `{"project_id":5}`, status: 400, code: "invalid_request"},

		{name: "list", method: "GET", path: "/manage/tokens", status: 200, check: func(t *testing.T, r response) {
			var ts []mgmtapi.Token
			r.json(t, &ts)
			if len(ts) != 5 || r.header.Get("X-Total-Count") != "5" {
				t.Fatalf("list %d, total %q", len(ts), r.header.Get("X-Total-Count"))
			}
			for _, tk := range ts {
				if !strings.HasPrefix(tk.Token, "llmp_") || !strings.Contains(tk.Token, "…") {
					t.Fatalf("token field %q is not a hint", tk.Token)
				}
			}
			if !ts[0].CreatedAt.After(ts[4].CreatedAt) && !ts[0].CreatedAt.Equal(ts[4].CreatedAt) {
				t.Fatal("not newest first")
			}
		}},
		{name: "list by project", method: "GET", path: "/manage/tokens?project_id={p}&page_size=2", status: 200, check: func(t *testing.T, r response) {
			var ts []mgmtapi.Token
			r.json(t, &ts)
			if len(ts) != 2 || r.header.Get("X-Total-Count") != "5" || !strings.Contains(r.header.Get("Link"), `rel="next"`) {
				t.Fatalf("list %d, headers %v", len(ts), r.header)
			}
		}},
		{name: "list legacy projectId", method: "GET", path: "/manage/tokens?projectId={q}", status: 200, check: func(t *testing.T, r response) {
			if strings.TrimSpace(r.body) != "[]" {
				t.Fatalf("body %q", r.body)
			}
		}},
		{name: "list garbage project", method: "GET", path: "/manage/tokens?project_id=zzz", status: 200, check: func(t *testing.T, r response) {
			if strings.TrimSpace(r.body) != "[]" {
				t.Fatalf("body %q", r.body)
			}
		}},
		{name: "list page_size=0", method: "GET", path: "/manage/tokens?page_size=0", status: 400, code: "invalid_request"},
		{name: "list page=x", method: "GET", path: "/manage/tokens?page=x", status: 400, code: "invalid_request"},

		{name: "get", method: "GET", path: "/manage/tokens/{t}", status: 200, check: func(t *testing.T, r response) {
			var tk mgmtapi.Token
			r.json(t, &tk)
			if tk.ID != tokID || !tk.IsActive || tk.MaxRequests != nil || tk.DeactivatedAt != nil {
				t.Fatalf("get %+v", tk)
			}
			var raw map[string]any
			r.json(t, &raw)
			for _, k := range []string{"max_requests", "last_used_at", "deactivated_at", "expires_at", "cache_hit_count", "request_count"} {
				if _, ok := raw[k]; !ok {
					t.Fatalf("field %s missing: %s", k, r.body)
				}
			}
		}},
		{name: "get unknown", method: "GET", path: "/manage/tokens/{missing}", status: 404, code: "not_found", msg: "token not found"},
		{name: "get garbage", method: "GET", path: "/manage/tokens/llmp_abc", status: 404, code: "not_found"},

		{name: "patch max_requests", method: "PATCH", path: "/manage/tokens/{t}", body: `{"max_requests":10}`, status: 200, check: func(t *testing.T, r response) {
			var tk mgmtapi.Token
			r.json(t, &tk)
			if tk.MaxRequests == nil || *tk.MaxRequests != 10 {
				t.Fatalf("max %v", tk.MaxRequests)
			}
			if !env.Invalidations.Has("token", tokID) {
				t.Fatal("not invalidated")
			}
		}},
		{name: "patch max_requests 0 = unlimited", method: "PATCH", path: "/manage/tokens/{t}", body: `{"max_requests":0}`, status: 200, check: func(t *testing.T, r response) {
			var tk mgmtapi.Token
			r.json(t, &tk)
			if tk.MaxRequests != nil {
				t.Fatalf("max %v", *tk.MaxRequests)
			}
		}},
		{name: "patch expires_at", method: "PATCH", path: "/manage/tokens/{t}", body: `{"expires_at":"` + time.Now().Add(48*time.Hour).UTC().Format(time.RFC3339) + `"}`, status: 200, check: func(t *testing.T, r response) {
			var tk mgmtapi.Token
			r.json(t, &tk)
			if tk.ExpiresAt == nil || time.Until(*tk.ExpiresAt) < 47*time.Hour {
				t.Fatalf("expires %v", tk.ExpiresAt)
			}
		}},
		{name: "patch expires_at null", method: "PATCH", path: "/manage/tokens/{t}", body: `{"expires_at":null}`, status: 200, check: func(t *testing.T, r response) {
			var tk mgmtapi.Token
			r.json(t, &tk)
			if tk.ExpiresAt != nil {
				t.Fatalf("expires %v", tk.ExpiresAt)
			}
		}},
		{name: "patch deactivate", method: "PATCH", path: "/manage/tokens/{t}", body: `{"is_active":false}`, status: 200, check: func(t *testing.T, r response) {
			var tk mgmtapi.Token
			r.json(t, &tk)
			if tk.IsActive || tk.DeactivatedAt == nil {
				t.Fatalf("deactivated %+v", tk)
			}
		}},
		{name: "patch reactivate", method: "PATCH", path: "/manage/tokens/{t}", body: `{"is_active":true}`, status: 200, check: func(t *testing.T, r response) {
			var tk mgmtapi.Token
			r.json(t, &tk)
			if !tk.IsActive || tk.DeactivatedAt != nil {
				t.Fatalf("reactivated %+v", tk)
			}
		}},
		{name: "patch nothing", method: "PATCH", path: "/manage/tokens/{t}", body: `{}`, status: 400, code: "invalid_request", msg: "no fields to update"},
		{name: "patch negative", method: "PATCH", path: "/manage/tokens/{t}", body: `{"max_requests":-3}`, status: 400, code: "invalid_request", msg: "max_requests must be >= 0"},
		{name: "patch bad expiry", method: "PATCH", path: "/manage/tokens/{t}", body: `{"expires_at":"tomorrow"}`, status: 400, code: "invalid_request"},
		{name: "patch unknown", method: "PATCH", path: "/manage/tokens/{missing}", body: `{"is_active":false}`, status: 404, code: "not_found", msg: "token not found"},

		{name: "delete", method: "DELETE", path: "/manage/tokens/{t}", status: 204, check: func(t *testing.T, r response) {
			tk, err := env.Store.GetToken(ctx, tokID)
			if err != nil || tk.IsActive || tk.DeactivatedAt == nil {
				t.Fatalf("after revoke %+v %v", tk, err)
			}
		}},
		{name: "delete again", method: "DELETE", path: "/manage/tokens/{t}", status: 204},
		{name: "delete unknown", method: "DELETE", path: "/manage/tokens/{missing}", status: 404, code: "not_found", msg: "token not found"},
		{name: "list active only", method: "GET", path: "/manage/tokens?active_only=true", status: 200, check: func(t *testing.T, r response) {
			var ts []mgmtapi.Token
			r.json(t, &ts)
			if len(ts) != 4 {
				t.Fatalf("active tokens %d", len(ts))
			}
		}},
		{name: "put", method: "PUT", path: "/manage/tokens/{t}", body: `{}`, status: 405, code: "method_not_allowed", check: func(t *testing.T, r response) {
			if r.header.Get("Allow") != "GET, PATCH, DELETE" {
				t.Fatalf("Allow %q", r.header.Get("Allow"))
			}
		}},
		{name: "delete collection", method: "DELETE", path: "/manage/tokens", status: 405, code: "method_not_allowed"},
		{name: "unknown path", method: "GET", path: "/manage/tokens/a/b", status: 404, code: "not_found"},
	}
	for _, s := range steps {
		repl := strings.NewReplacer("{p}", p.ID, "{q}", q.ID, "{t}", tokID, "{missing}", missing)
		r := c.do(t, s.method, repl.Replace(s.path), repl.Replace(s.body))
		if r.status != s.status {
			t.Errorf("%s: status %d, want %d (%s)", s.name, r.status, s.status, r.body)
			continue
		}
		msg, code := r.errBody()
		if s.code != "" && code != s.code {
			t.Errorf("%s: code %q, want %q", s.name, code, s.code)
		}
		if s.msg != "" && msg != s.msg {
			t.Errorf("%s: message %q, want %q", s.name, msg, s.msg)
		}
		if s.check != nil {
			t.Run(s.name, func(t *testing.T) { s.check(t, r) })
		}
	}

	// Audit: every action left a record with the original's names.
	for action, outcome := range map[string]string{
		"token.create": "success", "token.list": "success", "token.read": "success", "token.update": "success",
		"token.revoke": "success",
	} {
		if _, n, err := env.Store.ListAudit(ctx, store.AuditFilter{Action: action, Outcome: outcome}); err != nil || n == 0 {
			t.Errorf("no %s/%s audit record (%v)", action, outcome, err)
		}
	}
	evs, _, err := env.Store.ListAudit(ctx, store.AuditFilter{Action: "token.create", Outcome: "denied"})
	if err != nil || len(evs) != 1 || evs[0].ProjectID != q.ID {
		t.Errorf("inactive-project creation audit: %+v %v", evs, err)
	}
	evs, _, err = env.Store.ListAudit(ctx, store.AuditFilter{Action: "token.revoke", TokenID: tokID})
	if err != nil || len(evs) != 2 || evs[0].Details["already_revoked"] != true {
		t.Errorf("revoke audit: %+v %v", evs, err)
	}
	if _, n, _ := env.Store.ListAudit(ctx, store.AuditFilter{Action: "token.create", Outcome: "failure"}); n < 9 {
		t.Errorf("failed creations audited: %d", n)
	}

	// No secret anywhere after creation: responses, logs, audit (database
	// and file), and the raw SQLite files.
	_ = env.Recorder.Close()
	secrets := append([]string{upstreamKey, upstreamKey[8:24]}, plaintexts...)
	for _, pt := range plaintexts {
		secrets = append(secrets, pt[len("llmp_"):]) // the random part alone
	}
	haystacks := map[string]string{"logs": env.Logs.String()}
	for i, b := range c.bodies {
		haystacks["response "+string(rune('A'+i%26))+itoa(i)] = b
	}
	var auditDump strings.Builder
	if err := env.Store.AuditChain(ctx, func(e llmproxy.AuditEvent) error {
		b, _ := json.Marshal(e)
		auditDump.Write(b)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	haystacks["audit db"] = auditDump.String()
	file, err := os.ReadFile(env.AuditFile)
	if err != nil || len(file) == 0 {
		t.Fatalf("audit file: %v (%d bytes)", err, len(file))
	}
	haystacks["audit file"] = string(file)
	if env.Engine == "sqlite" {
		matches, _ := filepath.Glob(env.DB.Path + "*")
		if len(matches) == 0 {
			t.Fatalf("no SQLite files at %s", env.DB.Path)
		}
		for _, m := range matches {
			b, err := os.ReadFile(m)
			if err != nil {
				t.Fatal(err)
			}
			haystacks[filepath.Base(m)] = string(b)
		}
	}
	if !strings.Contains(haystacks["audit file"], `"action":"token.create"`) {
		t.Fatal("audit file lacks token.create records")
	}
	for where, text := range haystacks {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("secret %.12s… found in %s", s, where)
			}
		}
	}
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}
