package manageprojects_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	manageprojects "github.com/llm-proxy/llm-proxy/functions/manage-projects"
	"github.com/llm-proxy/llm-proxy/shared/httpcache"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/management"
	"github.com/llm-proxy/llm-proxy/shared/management/managementtest"
	"github.com/llm-proxy/llm-proxy/shared/mgmtapi"
	"github.com/llm-proxy/llm-proxy/shared/store"
)

const upstreamKey = "sk-proj-UPSTREAMsecretKEY1234567890abcdef"

type fakePurger struct {
	mu   sync.Mutex
	reqs []httpcache.PurgeRequest
}

func (f *fakePurger) Purge(_ context.Context, r httpcache.PurgeRequest) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, r)
	return 3, nil
}

func (f *fakePurger) last() httpcache.PurgeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reqs[len(f.reqs)-1]
}

// response is a decoded answer.
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

func call(t *testing.T, h http.Handler, method, path, body string, hdr map[string]string) response {
	t.Helper()
	var rd *strings.Reader
	if body != "" {
		rd = strings.NewReader(body)
	} else {
		rd = strings.NewReader("")
	}
	req := httptest.NewRequest(method, path, rd)
	req.RemoteAddr = "198.51.100.7:4242"
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+managementtest.ManagementToken)
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
			continue
		}
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := response{status: rec.Code, header: rec.Header(), body: rec.Body.String()}
	if res.status >= 400 {
		if ct := res.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: error with Content-Type %q, body %q", method, path, ct, res.body)
		}
		var eb struct{ Error, Code string }
		if err := json.Unmarshal([]byte(res.body), &eb); err != nil || eb.Error == "" || eb.Code == "" {
			t.Errorf("%s %s: error body %q is not {error,code}", method, path, res.body)
		}
	}
	if res.header.Get("X-Request-ID") == "" {
		t.Errorf("%s %s: no X-Request-ID", method, path)
	}
	return res
}

func errCode(t *testing.T, r response) string {
	var eb struct{ Error, Code string }
	_ = json.Unmarshal([]byte(r.body), &eb)
	return eb.Code
}

func errMsg(r response) string {
	var eb struct{ Error, Code string }
	_ = json.Unmarshal([]byte(r.body), &eb)
	return eb.Error
}

// step is one request of the suite and what must come back.
type step struct {
	name   string
	method string
	path   string // {p} = active project id, {q} = inactive project id, {missing} = unknown uuid
	body   string
	hdr    map[string]string
	status int
	code   string // error code, for errors
	msg    string // error message, when it matters
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
	env := managementtest.New(t, engine, managementtest.Options{FailureLimit: 1000})
	purger := &fakePurger{}
	h := manageprojects.New(manageprojects.Deps{Service: env.Service, Auth: env.Auth, Cache: purger, Log: env.Log})
	noCache := manageprojects.New(manageprojects.Deps{Service: env.Service, Auth: env.Auth, Log: env.Log})
	ctx := context.Background()
	a := managementtest.Actor()

	p, err := env.Service.CreateProject(ctx, a, management.CreateProjectInput{Name: "alpha", APIKey: upstreamKey})
	if err != nil {
		t.Fatal(err)
	}
	q, err := env.Service.CreateProject(ctx, a, management.CreateProjectInput{Name: "beta", APIKey: upstreamKey + "2"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Service.UpdateProject(ctx, a, q.ID, management.UpdateProjectInput{IsActive: new(false)}); err != nil {
		t.Fatal(err)
	}
	var tokIDs []string
	for range 3 {
		tok, err := env.Service.CreateToken(ctx, a, management.CreateTokenInput{ProjectID: p.ID, Duration: "1h"})
		if err != nil {
			t.Fatal(err)
		}
		tokIDs = append(tokIDs, tok.ID)
	}
	missing := "00000000-0000-4000-8000-000000000000"
	start := time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)

	masked := func(t *testing.T, r response) {
		t.Helper()
		if strings.Contains(r.body, upstreamKey[6:20]) {
			t.Fatalf("upstream key in response: %s", r.body)
		}
		var pr mgmtapi.Project
		r.json(t, &pr)
		if !strings.Contains(pr.APIKey, "...") && !strings.Contains(pr.APIKey, "*") {
			t.Fatalf("api_key %q is not masked", pr.APIKey)
		}
	}
	var created mgmtapi.Project

	steps := []step{
		// Authentication.
		{name: "no auth", method: "GET", path: "/manage/projects", hdr: map[string]string{"Authorization": ""}, status: 401, code: "unauthorized", msg: "missing or invalid Authorization header"},
		{name: "wrong token", method: "GET", path: "/manage/projects", hdr: map[string]string{"Authorization": "Bearer nope"}, status: 401, code: "unauthorized", msg: "invalid management token"},
		{name: "basic scheme", method: "GET", path: "/manage/projects", hdr: map[string]string{"Authorization": "Basic " + managementtest.ManagementToken}, status: 401, code: "unauthorized"},
		{name: "lowercase bearer", method: "GET", path: "/manage/projects", hdr: map[string]string{"Authorization": "bearer " + managementtest.ManagementToken}, status: 200},

		// List and pagination.
		{name: "list", method: "GET", path: "/manage/projects", status: 200, check: func(t *testing.T, r response) {
			var ps []mgmtapi.Project
			r.json(t, &ps)
			if len(ps) != 2 || ps[0].Name != "alpha" || ps[1].Name != "beta" {
				t.Fatalf("list = %+v", ps)
			}
			if r.header.Get("X-Total-Count") != "2" {
				t.Fatalf("X-Total-Count = %q", r.header.Get("X-Total-Count"))
			}
			if !strings.Contains(r.header.Get("Link"), `rel="first"`) || !strings.Contains(r.header.Get("Link"), `rel="last"`) {
				t.Fatalf("Link = %q", r.header.Get("Link"))
			}
			masked(t, response{body: mustJSON(t, ps[0])})
		}},
		{name: "page 1 of 2", method: "GET", path: "/manage/projects?page_size=1", status: 200, check: func(t *testing.T, r response) {
			var ps []mgmtapi.Project
			r.json(t, &ps)
			link := r.header.Get("Link")
			if len(ps) != 1 || ps[0].Name != "alpha" || !strings.Contains(link, `page=2&page_size=1>; rel="next"`) || strings.Contains(link, `rel="prev"`) {
				t.Fatalf("page 1: %+v, Link %q", ps, link)
			}
		}},
		{name: "page 2 of 2", method: "GET", path: "/manage/projects?page=2&page_size=1", status: 200, check: func(t *testing.T, r response) {
			var ps []mgmtapi.Project
			r.json(t, &ps)
			link := r.header.Get("Link")
			if len(ps) != 1 || ps[0].Name != "beta" || !strings.Contains(link, `rel="prev"`) || strings.Contains(link, `rel="next"`) {
				t.Fatalf("page 2: %+v, Link %q", ps, link)
			}
		}},
		{name: "page beyond end is empty array", method: "GET", path: "/manage/projects?page=9", status: 200, check: func(t *testing.T, r response) {
			if strings.TrimSpace(r.body) != "[]" {
				t.Fatalf("body %q", r.body)
			}
		}},
		{name: "page_size capped", method: "GET", path: "/manage/projects?page_size=1000", status: 200, check: func(t *testing.T, r response) {
			if !strings.Contains(r.header.Get("Link"), "page_size=100>") {
				t.Fatalf("Link = %q", r.header.Get("Link"))
			}
		}},
		{name: "page_size=0", method: "GET", path: "/manage/projects?page_size=0", status: 400, code: "invalid_request"},
		{name: "page_size negative", method: "GET", path: "/manage/projects?page_size=-5", status: 400, code: "invalid_request"},
		{name: "page_size not a number", method: "GET", path: "/manage/projects?page_size=ten", status: 400, code: "invalid_request"},
		{name: "page=0", method: "GET", path: "/manage/projects?page=0", status: 400, code: "invalid_request"},
		{name: "active_only", method: "GET", path: "/manage/projects?active_only=true", status: 200, check: names("alpha")},
		{name: "activeOnly legacy", method: "GET", path: "/manage/projects?activeOnly=true", status: 200, check: names("alpha")},
		{name: "active_only invalid", method: "GET", path: "/manage/projects?active_only=maybe", status: 400, code: "invalid_request"},
		{name: "search", method: "GET", path: "/manage/projects?search=ET", status: 200, check: names("beta")},

		// Create.
		{name: "create", method: "POST", path: "/manage/projects", body: `{"name":"gamma","api_key":"` + upstreamKey + `"}`, status: 201, check: func(t *testing.T, r response) {
			masked(t, r)
			r.json(t, &created)
			if !created.IsActive || created.Name != "gamma" || created.DeactivatedAt != nil {
				t.Fatalf("created %+v", created)
			}
		}},
		{name: "create legacy openai_api_key", method: "POST", path: "/manage/projects", body: `{"name":"delta","openai_api_key":"` + upstreamKey + `"}`, status: 201, check: masked},
		{name: "create with limits", method: "POST", path: "/manage/projects", body: `{"name":"eps","api_key":"` + upstreamKey + `","limits":{"requests_per_minute":60},"token_defaults":{"requests_per_day":100}}`, status: 201, check: func(t *testing.T, r response) {
			var pr mgmtapi.Project
			r.json(t, &pr)
			if pr.Limits.RequestsPerMinute != 60 || pr.TokenDefaults.RequestsPerDay != 100 {
				t.Fatalf("limits %+v %+v", pr.Limits, pr.TokenDefaults)
			}
		}},
		{name: "create duplicate", method: "POST", path: "/manage/projects", body: `{"name":"alpha","api_key":"` + upstreamKey + `"}`, status: 409, code: "conflict"},
		{name: "create missing key", method: "POST", path: "/manage/projects", body: `{"name":"x"}`, status: 400, code: "invalid_request", msg: "name and api_key are required"},
		{name: "create missing name", method: "POST", path: "/manage/projects", body: `{"api_key":"` + upstreamKey + `"}`, status: 400, code: "invalid_request", msg: "name and api_key are required"},
		{name: "create obfuscated ...", method: "POST", path: "/manage/projects", body: `{"name":"x","api_key":"sk-proj-...abcd"}`, status: 400, code: "invalid_request", msg: "cannot save obfuscated API key - please provide the full API key"},
		{name: "create obfuscated ****", method: "POST", path: "/manage/projects", body: `{"name":"x","api_key":"sk-****abcd"}`, status: 400, code: "invalid_request"},
		{name: "create blank name", method: "POST", path: "/manage/projects", body: `{"name":"   ","api_key":"` + upstreamKey + `"}`, status: 400, code: "invalid_request"},
		{name: "create negative limits", method: "POST", path: "/manage/projects", body: `{"name":"x","api_key":"` + upstreamKey + `","limits":{"requests_per_minute":-1}}`, status: 400, code: "invalid_request"},
		{name: "create bad json", method: "POST", path: "/manage/projects", body: `{"name":`, status: 400, code: "invalid_request"},
		{name: "create wrong content type", method: "POST", path: "/manage/projects", body: `{"name":"x"}`, hdr: map[string]string{"Content-Type": "text/plain"}, status: 400, code: "invalid_request"},
		{name: "create too large", method: "POST", path: "/manage/projects", body: `{"name":"` + strings.Repeat("a", 2<<20) + `"}`, status: 413, code: "request_too_large"},

		// Get.
		{name: "get", method: "GET", path: "/manage/projects/{p}", status: 200, check: masked},
		{name: "get unknown", method: "GET", path: "/manage/projects/{missing}", status: 404, code: "not_found", msg: "project not found"},
		{name: "get garbage id", method: "GET", path: "/manage/projects/not-an-id", status: 404, code: "not_found"},
		{name: "get trailing slash", method: "GET", path: "/manage/projects/", status: 404, code: "not_found"},

		// Update.
		{name: "patch name", method: "PATCH", path: "/manage/projects/{p}", body: `{"name":"alpha2"}`, status: 200, check: func(t *testing.T, r response) {
			masked(t, r)
			var pr mgmtapi.Project
			r.json(t, &pr)
			if pr.Name != "alpha2" {
				t.Fatalf("name %q", pr.Name)
			}
		}},
		{name: "patch api_key", method: "PATCH", path: "/manage/projects/{p}", body: `{"api_key":"sk-proj-NEWsecretKEYvalue0987654321zz"}`, status: 200, check: func(t *testing.T, r response) {
			if strings.Contains(r.body, "NEWsecretKEY") {
				t.Fatalf("new key returned: %s", r.body)
			}
			var pr mgmtapi.Project
			r.json(t, &pr)
			if pr.APIKey != "sk-pro...21zz" {
				t.Fatalf("api_key = %q", pr.APIKey)
			}
		}},
		{name: "patch empty api_key ignored", method: "PATCH", path: "/manage/projects/{p}", body: `{"api_key":"","name":"alpha"}`, status: 200},
		{name: "patch obfuscated key", method: "PATCH", path: "/manage/projects/{p}", body: `{"api_key":"sk-pro...21zz"}`, status: 400, code: "invalid_request", msg: "cannot save obfuscated API key - please provide the full API key"},
		{name: "patch duplicate name", method: "PATCH", path: "/manage/projects/{p}", body: `{"name":"beta"}`, status: 409, code: "conflict"},
		{name: "patch empty name", method: "PATCH", path: "/manage/projects/{p}", body: `{"name":""}`, status: 400, code: "invalid_request"},
		{name: "patch nothing", method: "PATCH", path: "/manage/projects/{p}", body: `{}`, status: 400, code: "invalid_request", msg: "no fields to update"},
		{name: "patch revoke without deactivate", method: "PATCH", path: "/manage/projects/{p}", body: `{"revoke_tokens":true}`, status: 400, code: "invalid_request", msg: "revoke_tokens requires is_active=false"},
		{name: "patch revoke with active true", method: "PATCH", path: "/manage/projects/{p}", body: `{"revoke_tokens":true,"is_active":true}`, status: 400, code: "invalid_request"},
		{name: "patch unknown", method: "PATCH", path: "/manage/projects/{missing}", body: `{"name":"zz"}`, status: 404, code: "not_found", msg: "project not found"},
		{name: "patch bad json", method: "PATCH", path: "/manage/projects/{p}", body: `[1,2]`, status: 400, code: "invalid_request"},
		{name: "reactivate", method: "PATCH", path: "/manage/projects/{q}", body: `{"is_active":true}`, status: 200, check: func(t *testing.T, r response) {
			var pr mgmtapi.Project
			r.json(t, &pr)
			if !pr.IsActive || pr.DeactivatedAt != nil {
				t.Fatalf("reactivated %+v", pr)
			}
			if !env.Invalidations.Has("project", q.ID) {
				t.Fatal("project not invalidated")
			}
		}},
		{name: "deactivate and revoke tokens", method: "PATCH", path: "/manage/projects/{p}", body: `{"is_active":false,"revoke_tokens":true}`, status: 200, check: func(t *testing.T, r response) {
			var pr mgmtapi.Project
			r.json(t, &pr)
			if pr.IsActive || pr.DeactivatedAt == nil {
				t.Fatalf("deactivated %+v", pr)
			}
			got, err := env.Store.GetProject(ctx, p.ID)
			if err != nil || got.DeactivatedAt == nil {
				t.Fatalf("deactivated_at not persisted: %+v %v", got, err)
			}
			for _, id := range tokIDs {
				tok, err := env.Store.GetToken(ctx, id)
				if err != nil || tok.IsActive || tok.DeactivatedAt == nil {
					t.Fatalf("token %s not revoked: %+v %v", id, tok, err)
				}
			}
			if !env.Invalidations.Has("project", p.ID) {
				t.Fatal("project not invalidated")
			}
		}},

		// Delete and other methods.
		{name: "delete refused", method: "DELETE", path: "/manage/projects/{p}", status: 405, code: "method_not_allowed", check: allow("GET, PATCH")},
		{name: "put project", method: "PUT", path: "/manage/projects/{p}", body: `{}`, status: 405, code: "method_not_allowed", check: allow("GET, PATCH")},
		{name: "put collection", method: "PUT", path: "/manage/projects", body: `{}`, status: 405, code: "method_not_allowed", check: allow("GET, POST")},
		{name: "unknown path", method: "GET", path: "/manage/nothing", status: 404, code: "not_found"},

		// Bulk revoke.
		{name: "bulk revoke again", method: "POST", path: "/manage/projects/{p}/tokens/revoke", status: 200, check: func(t *testing.T, r response) {
			var rr store.RevokeResult
			r.json(t, &rr)
			if rr.Total != 3 || rr.Revoked != 0 || rr.AlreadyRevoked != 3 {
				t.Fatalf("revoke %+v (%s)", rr, r.body)
			}
		}},
		{name: "bulk revoke unknown", method: "POST", path: "/manage/projects/{missing}/tokens/revoke", status: 404, code: "not_found", msg: "project not found"},
		{name: "bulk revoke GET", method: "GET", path: "/manage/projects/{p}/tokens/revoke", status: 405, code: "method_not_allowed", check: allow("POST")},

		// Cache purge.
		{name: "purge project", method: "POST", path: "/manage/cache/purge", body: `{"project_id":"{p}"}`, status: 200, check: func(t *testing.T, r response) {
			if got := purger.last(); got.ProjectID != p.ID || got.All || got.Method != "" {
				t.Fatalf("purge %+v", got)
			}
			var res mgmtapi.PurgeResult
			r.json(t, &res)
			if res.Deleted != 3 || res.PurgeType != "project" {
				t.Fatalf("result %+v", res)
			}
		}},
		{name: "purge exact", method: "POST", path: "/manage/cache/purge", body: `{"project_id":"{p}","method":"POST","path":"/v1/embeddings","body":{"input":"hi"}}`, status: 200, check: func(t *testing.T, r response) {
			got := purger.last()
			if got.ProjectID != p.ID || got.Method != "POST" || got.Path != "/v1/embeddings" || string(got.Body) != `{"input":"hi"}` {
				t.Fatalf("purge %+v body %q", got, got.Body)
			}
		}},
		{name: "purge all", method: "POST", path: "/manage/cache/purge", body: `{"all":true}`, status: 200, check: func(t *testing.T, r response) {
			if !purger.last().All {
				t.Fatal("not all")
			}
		}},
		{name: "purge nothing", method: "POST", path: "/manage/cache/purge", body: `{}`, status: 400, code: "invalid_request"},
		{name: "purge exact without path", method: "POST", path: "/manage/cache/purge", body: `{"project_id":"{p}","method":"POST"}`, status: 400, code: "invalid_request"},
		{name: "purge unknown project", method: "POST", path: "/manage/cache/purge", body: `{"project_id":"{missing}"}`, status: 404, code: "not_found"},
		{name: "purge GET", method: "GET", path: "/manage/cache/purge", status: 405, code: "method_not_allowed", check: allow("POST")},

		// Audit.
		{name: "audit list", method: "GET", path: "/manage/audit", status: 200, check: func(t *testing.T, r response) {
			var l mgmtapi.AuditList
			r.json(t, &l)
			if len(l.Events) == 0 || l.Pagination.TotalCount < len(l.Events) || l.Pagination.PageSize != 20 {
				t.Fatalf("audit list %+v", l.Pagination)
			}
			if r.header.Get("X-Total-Count") == "" {
				t.Fatal("no X-Total-Count")
			}
		}},
		{name: "audit filter action", method: "GET", path: "/manage/audit?action=project.delete", status: 200, check: func(t *testing.T, r response) {
			l := auditList(t, r)
			if len(l.Events) != 1 || l.Events[0].Outcome != "failure" || l.Events[0].ProjectID != p.ID || l.Events[0].Method != "DELETE" {
				t.Fatalf("project.delete events %+v", l.Events)
			}
		}},
		{name: "audit filter outcome+action", method: "GET", path: "/manage/audit?action=project.create&outcome=failure&page_size=100", status: 200, check: func(t *testing.T, r response) {
			l := auditList(t, r)
			if len(l.Events) < 8 {
				t.Fatalf("want the failed creations, got %d", len(l.Events))
			}
			for _, e := range l.Events {
				if e.Action != "project.create" || e.Outcome != "failure" || e.Reason == "" {
					t.Fatalf("event %+v", e)
				}
			}
		}},
		{name: "audit filter project and time", method: "GET", path: "/manage/audit?project_id={p}&start_time=" + url.QueryEscape(start) + "&end_time=" + url.QueryEscape(time.Now().Add(time.Hour).UTC().Format(time.RFC3339)), status: 200, check: func(t *testing.T, r response) {
			l := auditList(t, r)
			if len(l.Events) == 0 {
				t.Fatal("no events for project")
			}
			for _, e := range l.Events {
				if e.ProjectID != p.ID {
					t.Fatalf("event of other project: %+v", e)
				}
			}
		}},
		{name: "audit filter future", method: "GET", path: "/manage/audit?start_time=2999-01-01T00:00:00Z", status: 200, check: func(t *testing.T, r response) {
			if !strings.Contains(r.body, `"events":[]`) {
				t.Fatalf("events must be [] not null: %s", r.body)
			}
		}},
		{name: "audit client ip and method", method: "GET", path: "/manage/audit?client_ip=198.51.100.7&method=PATCH&action=project.update", status: 200, check: func(t *testing.T, r response) {
			if l := auditList(t, r); len(l.Events) < 5 {
				t.Fatalf("got %d", len(l.Events))
			}
		}},
		{name: "audit denied", method: "GET", path: "/manage/audit?action=management.auth&outcome=denied", status: 200, check: func(t *testing.T, r response) {
			// No auth and the Basic scheme share a reason: the repeat is
			// aggregated (audit.RecordDenial), so one record per reason.
			if l := auditList(t, r); len(l.Events) != 2 {
				t.Fatalf("denied auth events %d", len(l.Events))
			}
		}},
		{name: "audit search", method: "GET", path: "/manage/audit?search=obfuscated", status: 200, check: func(t *testing.T, r response) {
			if l := auditList(t, r); len(l.Events) < 2 {
				t.Fatalf("search found %d", len(l.Events))
			}
		}},
		{name: "audit page_size=0", method: "GET", path: "/manage/audit?page_size=0", status: 400, code: "invalid_request"},
		{name: "audit bad time", method: "GET", path: "/manage/audit?start_time=yesterday", status: 400, code: "invalid_request"},
		{name: "audit inverted range", method: "GET", path: "/manage/audit?start_time=2026-01-02T00:00:00Z&end_time=2026-01-01T00:00:00Z", status: 400, code: "invalid_request"},
		{name: "audit get unknown", method: "GET", path: "/manage/audit/{missing}", status: 404, code: "not_found", msg: "audit event not found"},
		{name: "audit POST", method: "POST", path: "/manage/audit", body: `{}`, status: 405, code: "method_not_allowed", check: allow("GET")},
	}
	repl := strings.NewReplacer("{p}", p.ID, "{q}", q.ID, "{missing}", missing)
	for _, s := range steps {
		r := call(t, h, s.method, repl.Replace(s.path), repl.Replace(s.body), s.hdr)
		if r.status != s.status {
			t.Errorf("%s: status %d, want %d (%s)", s.name, r.status, s.status, truncate(r.body))
			continue
		}
		if s.code != "" && errCode(t, r) != s.code {
			t.Errorf("%s: code %q, want %q", s.name, errCode(t, r), s.code)
		}
		if s.msg != "" && errMsg(r) != s.msg {
			t.Errorf("%s: message %q, want %q", s.name, errMsg(r), s.msg)
		}
		if s.check != nil {
			t.Run(s.name, func(t *testing.T) { s.check(t, r) })
		}
	}

	// GET /manage/audit/{id} returns details as an object.
	l := auditList(t, call(t, h, "GET", "/manage/audit?action=project.create&outcome=success", "", nil))
	if len(l.Events) == 0 {
		t.Fatal("no project.create success events")
	}
	r := call(t, h, "GET", "/manage/audit/"+l.Events[0].ID, "", nil)
	var raw map[string]any
	r.json(t, &raw)
	if r.status != 200 || raw["action"] != "project.create" {
		t.Fatalf("audit show: %d %s", r.status, r.body)
	}
	if _, ok := raw["details"].(map[string]any); !ok {
		t.Fatalf("details is not an object: %s", r.body)
	}

	// Caching disabled.
	r = call(t, noCache, "POST", "/manage/cache/purge", `{"all":true}`, nil)
	if r.status != 400 || errMsg(r) != "caching is disabled" {
		t.Fatalf("purge without cache: %d %s", r.status, r.body)
	}
	// Listing and showing audit are themselves audited.
	for _, action := range []string{"audit.list", "audit.show", "cache.purge", "project.list", "project.read", "token.revoke_batch"} {
		evs, n, err := env.Store.ListAudit(ctx, store.AuditFilter{Action: action})
		if err != nil || n == 0 || len(evs) == 0 {
			t.Errorf("no %s audit records (%v)", action, err)
		}
	}
}

func auditList(t *testing.T, r response) mgmtapi.AuditList {
	t.Helper()
	var l mgmtapi.AuditList
	r.json(t, &l)
	if l.Events == nil {
		t.Fatalf("events is null: %s", r.body)
	}
	return l
}

func names(want ...string) func(t *testing.T, r response) {
	return func(t *testing.T, r response) {
		var ps []mgmtapi.Project
		r.json(t, &ps)
		var got []string
		for _, p := range ps {
			got = append(got, p.Name)
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("names %v, want %v", got, want)
		}
	}
}

func allow(want string) func(t *testing.T, r response) {
	return func(t *testing.T, r response) {
		if got := r.header.Get("Allow"); got != want {
			t.Fatalf("Allow = %q, want %q", got, want)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func truncate(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}

var _ = llmproxy.OutcomeDenied
