package adminui_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/llm-proxy/llm-proxy/functions/admin-ui/uitest"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/management"
	"github.com/llm-proxy/llm-proxy/shared/mgmtapi"
	"github.com/llm-proxy/llm-proxy/shared/store"
)

var testActor = management.Actor{Name: "test"}

// limitForm returns the four fields of a limit group (prefix "limits_" or
// "token_defaults_") in the order RPM, RPD, TPM, TPD.
func limitForm(prefix string, rpm, rpd, tpm, tpd string) url.Values {
	return url.Values{
		prefix + "requests_per_minute": {rpm}, prefix + "requests_per_day": {rpd},
		prefix + "tokens_per_minute": {tpm}, prefix + "tokens_per_day": {tpd},
	}
}

func merge(vs ...url.Values) url.Values {
	out := url.Values{}
	for _, v := range vs {
		for k, x := range v {
			out[k] = x
		}
	}
	return out
}

// projectEditForm is the full edit form as a browser without JavaScript
// posts it (the key field left blank).
func projectEditForm(name string, limits, defaults url.Values) url.Values {
	return merge(url.Values{"_method": {"PUT"}, "name": {name}, "api_key": {""}, "is_active": {"false", "true"}}, limits, defaults)
}

func TestProjectLimitsWithoutJavaScript(t *testing.T) {
	t.Parallel()
	srv := uitest.StartServer(t, uitest.Options{Base: "/admin"})
	c := signIn(t, srv)
	ctx := context.Background()
	project := func(id string) mgmtapi.Project {
		t.Helper()
		p, err := srv.Service.GetProject(ctx, testActor, id)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	// Create with limits: blank fields are unlimited.
	r := c.post("/projects", merge(url.Values{"name": {"Limited"}, "api_key": {"sk-limited-0123456789abcdef"}},
		limitForm("limits_", "100", "", "", "1000000"), limitForm("token_defaults_", "10", "", "5000", "")))
	if r.status != http.StatusSeeOther {
		t.Fatalf("create project: %d %s", r.status, r.body)
	}
	projectPath := strings.TrimPrefix(strings.Split(r.header.Get("Location"), "?")[0], "/admin")
	id := strings.TrimPrefix(projectPath, "/projects/")
	p := project(id)
	if want := (llmproxy.Limits{RequestsPerMinute: 100, TokensPerDay: 1000000}); p.Limits != want {
		t.Errorf("limits after create = %+v, want %+v", p.Limits, want)
	}
	if want := (llmproxy.Limits{RequestsPerMinute: 10, TokensPerMinute: 5000}); p.TokenDefaults != want {
		t.Errorf("token defaults after create = %+v, want %+v", p.TokenDefaults, want)
	}

	// The edit form shows them.
	r = c.get(projectPath + "/edit")
	for _, w := range []string{`id="limits_requests_per_minute" name="limits_requests_per_minute"`, `value="100"`, `value="1000000"`,
		`value="10"`, `value="5000"`, `<legend class="form-label">Project limits</legend>`} {
		if !strings.Contains(r.body, w) {
			t.Errorf("edit form lacks %s", w)
		}
	}

	for _, tc := range []struct {
		name               string
		limits, defaults   url.Values
		wantLim, wantDefts llmproxy.Limits
	}{
		{"change and add", limitForm("limits_", "200", "5000", "", "1000000"), limitForm("token_defaults_", "10", "100", "5000", ""),
			llmproxy.Limits{RequestsPerMinute: 200, RequestsPerDay: 5000, TokensPerDay: 1000000},
			llmproxy.Limits{RequestsPerMinute: 10, RequestsPerDay: 100, TokensPerMinute: 5000}},
		{"clear some, spaces trimmed", limitForm("limits_", " 300 ", "", "", "0"), limitForm("token_defaults_", "", "100", "", ""),
			llmproxy.Limits{RequestsPerMinute: 300}, llmproxy.Limits{RequestsPerDay: 100}},
		{"clear all", limitForm("limits_", "", "", "", ""), limitForm("token_defaults_", "", "", "", ""),
			llmproxy.Limits{}, llmproxy.Limits{}},
		{"set again", limitForm("limits_", "1", "2", "3", "4"), limitForm("token_defaults_", "5", "6", "7", "8"),
			llmproxy.Limits{RequestsPerMinute: 1, RequestsPerDay: 2, TokensPerMinute: 3, TokensPerDay: 4},
			llmproxy.Limits{RequestsPerMinute: 5, RequestsPerDay: 6, TokensPerMinute: 7, TokensPerDay: 8}},
	} {
		r := c.post(projectPath, projectEditForm("Limited", tc.limits, tc.defaults))
		if r.status != http.StatusSeeOther || !strings.Contains(r.header.Get("Location"), "done=project_updated") {
			t.Fatalf("%s: %d %q %s", tc.name, r.status, r.header.Get("Location"), r.body)
		}
		p := project(id)
		if p.Limits != tc.wantLim || p.TokenDefaults != tc.wantDefts || !p.IsActive || p.Name != "Limited" {
			t.Errorf("%s: limits %+v defaults %+v active %v, want %+v %+v", tc.name, p.Limits, p.TokenDefaults, p.IsActive, tc.wantLim, tc.wantDefts)
		}
	}

	// The detail page shows the values and "unlimited" for 0.
	c.post(projectPath, projectEditForm("Limited", limitForm("limits_", "250", "", "", ""), limitForm("token_defaults_", "", "", "9000", "")))
	r = c.get(projectPath)
	for _, w := range []string{`<th scope="row">Requests / minute</th><td>250</td><td>unlimited</td>`,
		`<th scope="row">Model tokens / minute</th><td>unlimited</td><td>9000</td>`} {
		if !strings.Contains(r.body, w) {
			t.Errorf("project page lacks %s", w)
		}
	}

	// Quick actions that send no limit fields keep the limits.
	if r := c.post(projectPath, url.Values{"_method": {"PATCH"}, "is_active": {"false"}}); r.status != http.StatusSeeOther {
		t.Fatalf("deactivate: %d", r.status)
	}
	if p := project(id); p.IsActive || p.Limits.RequestsPerMinute != 250 || p.TokenDefaults.TokensPerMinute != 9000 {
		t.Errorf("deactivate changed the limits: %+v %+v", p.Limits, p.TokenDefaults)
	}
	c.post(projectPath, url.Values{"_method": {"PATCH"}, "is_active": {"true"}})

	// Validation errors re-render the form with the message and what was
	// typed; nothing changes.
	before := project(id)
	for _, tc := range []struct {
		name             string
		limits, defaults url.Values
		want, field      string
		value            string
	}{
		{"negative", limitForm("limits_", "-1", "", "", ""), limitForm("token_defaults_", "", "", "9000", ""),
			"Project limits: requests per minute must be a whole number, 0 or more (blank for unlimited).", "limits_requests_per_minute", "-1"},
		{"not a number", limitForm("limits_", "250", "", "", ""), limitForm("token_defaults_", "", "lots", "9000", ""),
			"Defaults for new tokens: requests per day must be a whole number, 0 or more (blank for unlimited).", "token_defaults_requests_per_day", "lots"},
		{"fraction", limitForm("limits_", "250", "", "1.5", ""), limitForm("token_defaults_", "", "", "9000", ""),
			"Project limits: model tokens per minute must be a whole number", "limits_tokens_per_minute", "1.5"},
		{"too large", limitForm("limits_", "250", "", "", "99999999999999999999"), limitForm("token_defaults_", "", "", "9000", ""),
			"Project limits: model tokens per day must be a whole number", "limits_tokens_per_day", "99999999999999999999"},
	} {
		r := c.post(projectPath, projectEditForm("Renamed", tc.limits, tc.defaults))
		if r.status != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", tc.name, r.status)
			continue
		}
		if !strings.Contains(r.body, tc.want) || !strings.Contains(r.body, "<h1>Edit Project</h1>") {
			t.Errorf("%s: page lacks the message %q", tc.name, tc.want)
		}
		in := regexpFind(r.body, `<input[^>]*id="`+tc.field+`"[^>]*>`)
		if !strings.Contains(in, `value="`+tc.value+`"`) || !strings.Contains(in, `aria-invalid="true"`) {
			t.Errorf("%s: field %s not kept and marked: %s", tc.name, tc.field, in)
		}
		if !strings.Contains(r.body, `value="Renamed"`) || !strings.Contains(r.body, `value="9000"`) {
			t.Errorf("%s: the other typed values are not kept", tc.name)
		}
		if p := project(id); p.Limits != before.Limits || p.TokenDefaults != before.TokenDefaults || p.Name != before.Name {
			t.Errorf("%s: the project changed: %+v", tc.name, p)
		}
	}
	// On the create form too.
	r = c.post("/projects", merge(url.Values{"name": {"Other"}, "api_key": {"sk-other-0123456789abcdef"}},
		limitForm("limits_", "", "", "", ""), limitForm("token_defaults_", "x", "", "", "")))
	if r.status != http.StatusBadRequest || !strings.Contains(r.body, "Defaults for new tokens: requests per minute must be") ||
		!strings.Contains(r.body, `value="Other"`) || strings.Contains(r.body, "sk-other-0123456789abcdef") {
		t.Errorf("invalid limit on create: %d", r.status)
	}
	if _, n, _ := srv.Store.ListProjects(ctx, store.ProjectFilter{Search: "Other"}); n != 0 {
		t.Errorf("a project was created with an invalid limit")
	}

	// Each change is audited by the service with the admin UI as actor.
	list, err := srv.Service.ListAudit(ctx, testActor, management.AuditQuery{Action: "project.update", PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range list.Events {
		if e.Actor == "admin_ui" && e.Outcome == "success" {
			n++
		}
	}
	if n < 5 {
		t.Errorf("project.update successes by admin_ui = %d, want ≥ 5", n)
	}
}

func TestTokenLimitsWithoutJavaScript(t *testing.T) {
	t.Parallel()
	srv := uitest.StartServer(t, uitest.Options{Base: "/admin"})
	c := signIn(t, srv)
	ctx := context.Background()
	r := c.post("/projects", merge(url.Values{"name": {"Defaults"}, "api_key": {"sk-defaults-0123456789abcdef"}},
		limitForm("token_defaults_", "60", "", "10000", "200000")))
	projectID := strings.TrimPrefix(strings.Split(r.header.Get("Location"), "?")[0], "/admin/projects/")
	defaults := llmproxy.Limits{RequestsPerMinute: 60, TokensPerMinute: 10000, TokensPerDay: 200000}

	// The generate form shows the project's defaults as placeholders.
	r = c.get("/tokens/new?project_id=" + projectID)
	for _, w := range []string{`placeholder="project default: 60"`, `placeholder="project default: unlimited"`, `placeholder="project default: 200000"`,
		`<label for="limits_tokens_per_day" class="form-label">Model tokens per day</label>`} {
		if !strings.Contains(r.body, w) {
			t.Errorf("generate form lacks %s", w)
		}
	}

	generate := func(limits url.Values) (int, string, llmproxy.Limits) {
		t.Helper()
		before := tokenIDs(t, srv, projectID)
		r := c.post("/tokens", merge(url.Values{"project_id": {projectID}, "duration_minutes": {"60"}}, limits))
		after := tokenIDs(t, srv, projectID)
		for id := range after {
			if !before[id] {
				tok, err := srv.Service.GetToken(ctx, testActor, id)
				if err != nil {
					t.Fatal(err)
				}
				return r.status, r.body, tok.Limits
			}
		}
		return r.status, r.body, llmproxy.Limits{}
	}
	for _, tc := range []struct {
		name   string
		limits url.Values
		want   llmproxy.Limits
	}{
		{"no fields", nil, defaults},
		{"all blank", limitForm("limits_", "", "", "", ""), defaults},
		{"some set, rest default", limitForm("limits_", "", "500", "0", ""),
			llmproxy.Limits{RequestsPerMinute: 60, RequestsPerDay: 500, TokensPerDay: 200000}},
		{"all set", limitForm("limits_", "1", "2", "3", "4"), llmproxy.Limits{RequestsPerMinute: 1, RequestsPerDay: 2, TokensPerMinute: 3, TokensPerDay: 4}},
		{"all unlimited", limitForm("limits_", "0", "0", "0", "0"), llmproxy.Limits{}},
	} {
		status, body, got := generate(tc.limits)
		if status != http.StatusCreated {
			t.Errorf("%s: %d", tc.name, status)
			continue
		}
		if got != tc.want {
			t.Errorf("%s: token limits %+v, want %+v", tc.name, got, tc.want)
		}
		if !strings.Contains(body, `<td data-limit="requests_per_minute">`+limitText(tc.want.RequestsPerMinute)+`</td>`) {
			t.Errorf("%s: the created page does not show the limits", tc.name)
		}
	}
	// Invalid: the form again, nothing created.
	status, body, got := generate(limitForm("limits_", "", "-3", "", ""))
	if status != http.StatusBadRequest || !strings.Contains(body, "Rate limits: requests per day must be a whole number, 0 or more (blank for the project&#39;s default).") ||
		got != (llmproxy.Limits{}) || !strings.Contains(regexpFind(body, `<input[^>]*id="limits_requests_per_day"[^>]*>`), `value="-3"`) {
		t.Errorf("invalid limit on generate: %d, token created: %v", status, got != (llmproxy.Limits{}))
	}

	// Edit a token's limits: set, change, clear.
	var tokenID string
	for id := range tokenIDs(t, srv, projectID) {
		tokenID = id
		break
	}
	tokenPath := "/tokens/" + tokenID
	editForm := func(limits url.Values) url.Values {
		return merge(url.Values{"_method": {"PUT"}, "is_active": {"false", "true"}, "max_requests": {""}, "new_expires_at": {""}}, limits)
	}
	for _, tc := range []struct {
		name   string
		limits url.Values
		want   llmproxy.Limits
	}{
		{"set", limitForm("limits_", "7", "70", "700", "7000"), llmproxy.Limits{RequestsPerMinute: 7, RequestsPerDay: 70, TokensPerMinute: 700, TokensPerDay: 7000}},
		{"change", limitForm("limits_", "8", "70", "", "7000"), llmproxy.Limits{RequestsPerMinute: 8, RequestsPerDay: 70, TokensPerDay: 7000}},
		{"clear", limitForm("limits_", "", "", "", ""), llmproxy.Limits{}},
		{"set again", limitForm("limits_", "", "", "", "123"), llmproxy.Limits{TokensPerDay: 123}},
	} {
		r := c.post(tokenPath, editForm(tc.limits))
		if r.status != http.StatusSeeOther {
			t.Fatalf("%s: %d %s", tc.name, r.status, r.body)
		}
		tok, err := srv.Service.GetToken(ctx, testActor, tokenID)
		if err != nil {
			t.Fatal(err)
		}
		if tok.Limits != tc.want || !tok.IsActive {
			t.Errorf("%s: limits %+v active %v, want %+v", tc.name, tok.Limits, tok.IsActive, tc.want)
		}
	}
	r = c.get(tokenPath + "/edit")
	if !strings.Contains(regexpFind(r.body, `<input[^>]*id="limits_tokens_per_day"[^>]*>`), `value="123"`) {
		t.Error("edit form does not show the token's limit")
	}
	r = c.get(tokenPath)
	for _, w := range []string{`<td data-limit="tokens_per_day">123</td>`, `<td data-limit="requests_per_minute">unlimited</td>`} {
		if !strings.Contains(r.body, w) {
			t.Errorf("token page lacks %s", w)
		}
	}
	// Revoke and reactivate (no limit fields) keep the limits.
	c.post(tokenPath, url.Values{"_method": {"PATCH"}, "is_active": {"false"}})
	c.post(tokenPath, url.Values{"_method": {"PATCH"}, "is_active": {"true"}})
	if tok, _ := srv.Service.GetToken(ctx, testActor, tokenID); tok.Limits != (llmproxy.Limits{TokensPerDay: 123}) || !tok.IsActive {
		t.Errorf("reactivate changed the limits: %+v", tok.Limits)
	}
	// Invalid: the form again with the message and the typed values.
	r = c.post(tokenPath, editForm(limitForm("limits_", "5", "", "many", "")))
	if r.status != http.StatusBadRequest || !strings.Contains(r.body, "Rate limits: model tokens per minute must be a whole number, 0 or more (blank for unlimited).") ||
		!strings.Contains(regexpFind(r.body, `<input[^>]*id="limits_tokens_per_minute"[^>]*>`), `aria-invalid="true"`) ||
		!strings.Contains(regexpFind(r.body, `<input[^>]*id="limits_requests_per_minute"[^>]*>`), `value="5"`) {
		t.Errorf("invalid token limit: %d", r.status)
	}
	if tok, _ := srv.Service.GetToken(ctx, testActor, tokenID); tok.Limits != (llmproxy.Limits{TokensPerDay: 123}) {
		t.Errorf("an invalid post changed the limits: %+v", tok.Limits)
	}
}

func tokenIDs(t *testing.T, srv *uitest.Server, projectID string) map[string]bool {
	t.Helper()
	toks, _, err := srv.Store.ListTokens(context.Background(), store.TokenFilter{ProjectID: projectID, Page: store.Page{Number: 1, Size: store.MaxPageSize}})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, tok := range toks {
		out[tok.ID] = true
	}
	return out
}

func limitText(n int64) string {
	if n == 0 {
		return "unlimited"
	}
	return strconv.FormatInt(n, 10)
}

func regexpFind(s, re string) string { return regexp.MustCompile(re).FindString(s) }
