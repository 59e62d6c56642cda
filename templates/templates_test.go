package templates

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/a-h/templ"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/mgmtapi"
)

// Recognisable secrets planted in the fixtures where a careless template
// might pick them up (audit details, reasons). None may be rendered.
const (
	secretKey       = "sk-proj-SECRETUPSTREAMKEY0123456789"
	secretTokenHash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	secretToken     = "llmp_SECRETPLAINTEXTTOKENabcdef123"
	secretMgmt      = "SECRET-MANAGEMENT-TOKEN-value"
	newToken        = "llmp_NEWTOKENSHOWNONCEabcdef456"
)

func fixtures() map[string]templ.Component {
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	exp := now.Add(time.Hour)
	max := int64(10)
	p := Page{Base: "/admin", Title: "T", Nav: "projects", CSRF: "csrf-value", SignedIn: true, AssetVersion: "1"}
	proj := mgmtapi.Project{ID: "11111111-1111-1111-1111-111111111111", Name: "Proj", APIKey: "sk-pro...6789",
		IsActive: true, CreatedAt: now, UpdatedAt: now,
		Limits: llmproxy.Limits{RequestsPerMinute: 120, TokensPerDay: 500000}, TokenDefaults: llmproxy.Limits{RequestsPerMinute: 60, TokensPerMinute: 10000}}
	tok := mgmtapi.Token{ID: "22222222-2222-2222-2222-222222222222", Token: "llmp_SECR…f123", ProjectID: proj.ID,
		ExpiresAt: &exp, IsActive: true, MaxRequests: &max, CreatedAt: now, Limits: llmproxy.Limits{RequestsPerDay: 1000}}
	badLimits := LimitValuesOf(proj.Limits)
	badLimits.Values["requests_per_day"], badLimits.Invalid = "-5", "requests_per_day"
	ev := mgmtapi.AuditEvent{ID: "33333333-3333-3333-3333-333333333333", Timestamp: now, Action: "project.update",
		Actor: "admin_ui", Outcome: "failure", ProjectID: proj.ID, TokenID: tok.ID, ClientIP: "192.0.2.1",
		Details: map[string]any{
			"api_key": secretKey, "token": secretToken, "token_hash": secretTokenHash,
			"management_token": secretMgmt, "authorization": "Bearer " + secretMgmt, "updated_fields": []string{"name"},
			"project_name": "Proj",
		}}
	pager := Pager{Pagination: mgmtapi.Pagination{Page: 2, PageSize: 1, TotalCount: 3, TotalPages: 3, HasNext: true, HasPrev: true}, Path: "/x"}
	return map[string]templ.Component{
		"Layout":    Layout(p),
		"Login":     Login(Page{Base: "/admin", Title: "Sign In", Error: "Invalid management token. Please check and try again."}),
		"ErrorPage": ErrorPage(p, 404, "There is no such page."),
		"Confirm":   Confirm(p, ConfirmData{Heading: "Revoke Token", Message: RevokeTokenMessage(tok.Token), Action: "/tokens/" + tok.ID, Method: "DELETE", Button: "Revoke Token", CancelPath: "/tokens"}),
		"Dashboard": Dashboard(p, DashboardData{ActiveProjects: 1, ActiveTokens: 1, TotalTokens: 1, ExpiringWithin: "24 hours",
			ExpiringSoon: []TokenRow{{Token: tok, ProjectName: "Proj"}}, Requests: []ProjectRequests{{ProjectID: proj.ID, Name: "Proj", Requests: 3}},
			Recent: []mgmtapi.AuditEvent{ev}, Now: now}),
		"Projects":    Projects(p, ProjectsData{Projects: []mgmtapi.Project{proj}, Pager: pager}),
		"ProjectNew":  ProjectNew(p, ProjectFormData{Name: "Proj"}),
		"ProjectEdit": ProjectEdit(p, ProjectFormData{Project: proj, Name: proj.Name, Limits: LimitValuesOf(proj.Limits), TokenDefaults: LimitValuesOf(proj.TokenDefaults)}),
		"ProjectEditInvalid": ProjectEdit(Page{Base: "/admin", Title: "T", CSRF: "csrf-value", SignedIn: true, Error: "Project limits: requests per day must be a whole number, 0 or more (blank for unlimited)."},
			ProjectFormData{Project: proj, Name: proj.Name, Limits: badLimits, TokenDefaults: LimitValuesOf(proj.TokenDefaults)}),
		"ProjectShow": ProjectShow(p, ProjectShowData{Project: proj, Tokens: []mgmtapi.Token{tok}, TokensTotal: 1, Now: now}),
		"Tokens":      Tokens(p, TokensData{Tokens: []TokenRow{{Token: tok, ProjectName: "Proj"}}, Projects: []mgmtapi.Project{proj}, Pager: pager, Now: now}),
		"TokenNew":    TokenNew(p, TokenNewData{Projects: []mgmtapi.Project{proj}, Duration: DefaultDuration}),
		"TokenNewForProject": TokenNew(p, TokenNewData{Projects: []mgmtapi.Project{proj}, ProjectID: proj.ID, Duration: DefaultDuration,
			Limits: LimitValues{Values: map[string]string{"tokens_per_day": "0"}}}),
		"TokenCreated": TokenCreated(p, TokenCreatedData{Token: mgmtapi.CreatedToken{ID: tok.ID, Token: newToken, Hint: "llmp_NEWT…f456",
			ProjectID: proj.ID, ExpiresAt: &exp, IsActive: true, CreatedAt: now, Limits: proj.TokenDefaults}, ProjectName: "Proj", ProxyURL: "http://localhost:8080/v1"}),
		"TokenShow": TokenShow(p, TokenData{Token: tok, ProjectName: "Proj", Now: now}),
		"TokenEdit": TokenEdit(p, TokenData{Token: tok, ProjectName: "Proj", Now: now, Limits: LimitValuesOf(tok.Limits)}),
		"Audit":     Audit(p, AuditData{Events: []mgmtapi.AuditEvent{ev}, Pager: pager}),
		"AuditShow": AuditShow(p, ev),
	}
}

func render(t *testing.T, c templ.Component) string {
	t.Helper()
	var buf bytes.Buffer
	if err := c.Render(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// TestEveryPageIsCovered keeps fixtures in step with the components: every
// exported page component must be rendered by the secret test.
func TestEveryPageIsCovered(t *testing.T) {
	files, _ := filepath.Glob("*.templ")
	re := regexp.MustCompile(`(?m)^templ ([A-Z]\w*)\(`)
	fx := fixtures()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			if m[1] == "CSRFField" || m[1] == "Time" || m[1] == "TimeOr" || m[1] == "Pagination" {
				continue // parts, rendered inside the pages
			}
			if _, ok := fx[m[1]]; !ok {
				t.Errorf("component %s (%s) has no fixture in the secret test", m[1], f)
			}
		}
	}
}

func TestNoPageRendersSecrets(t *testing.T) {
	for name, c := range fixtures() {
		t.Run(name, func(t *testing.T) {
			html := render(t, c)
			for what, s := range map[string]string{"upstream key": secretKey, "token hash": secretTokenHash,
				"stored token": secretToken, "management token": secretMgmt} {
				if strings.Contains(html, s) {
					t.Errorf("%s renders the %s", name, what)
				}
			}
			if name != "TokenCreated" && strings.Contains(html, newToken) {
				t.Errorf("%s renders a new token's plaintext", name)
			}
			if name == "TokenCreated" && !strings.Contains(html, newToken) {
				t.Error("TokenCreated does not show the new token")
			}
			// Key fields are never pre-filled.
			if m := regexp.MustCompile(`id="api_key"[^>]*value=`).FindString(html); m != "" {
				t.Errorf("%s pre-fills the api_key field: %s", name, m)
			}
			if m := regexp.MustCompile(`id="management_token"[^>]*value=`).FindString(html); m != "" {
				t.Errorf("%s pre-fills the management token: %s", name, m)
			}
		})
	}
}

func TestCompatibilityMarkup(t *testing.T) {
	fx := fixtures()
	for _, tc := range []struct {
		page string
		want []string
	}{
		{"Login", []string{`id="management_token"`, `name="management_token"`, `type="password"`, `<title>Sign In - LLM Proxy Admin</title>`, `class="alert alert-danger"`, `>Sign In</button>`}},
		{"Layout", []string{`href="/admin/static/css/admin.css?v=1"`, `src="/admin/static/js/admin.js?v=1"`, `href="/admin/projects"`, `href="/admin/tokens"`, `aria-current="page"`, `name="csrf_token" value="csrf-value"`}},
		{"Dashboard", []string{`<h1>Dashboard</h1>`, `id="server-time"`, `Create New Project`, `Generate Token`}},
		{"Projects", []string{`<h1>Projects</h1>`, `badge bg-success`, `Revoke All Tokens`, `data-confirm="Are you sure you want to revoke ALL tokens for project &#34;Proj&#34;? This action cannot be undone."`, `rel="next"`, `rel="prev"`}},
		{"ProjectEdit", []string{`id="name"`, `id="api_key"`, `id="is_active"`, `<input type="hidden" name="is_active" value="false">`, `Update Project`, `name="_method" value="PUT"`}},
		{"ProjectNew", []string{`id="name"`, `id="api_key"`, `Create Project</button>`, `<legend class="form-label">Project limits</legend>`,
			`<legend class="form-label">Defaults for new tokens</legend>`, `id="limits_requests_per_minute"`, `id="token_defaults_tokens_per_day"`}},
		{"ProjectShow", []string{`<h1>Proj</h1>`, `Status:`, `Generate Token`, `View Project Tokens`, `Edit Project`, `Revoke All Tokens`}},
		{"Tokens", []string{`<h1>Tokens</h1>`, `href="/admin/tokens/22222222-2222-2222-2222-222222222222/edit"`, `Revoke Token`, `btn-outline-danger`, `0 / 10`, `data-confirm="Are you sure you want to revoke token`}},
		{"TokenNew", []string{`id="project_id"`, `id="duration_minutes"`, `id="max_requests"`, `<option value="15" selected>15 minutes</option>`, `<option value="525600">365 days</option>`}},
		{"TokenShow", []string{`<h1>Token Details</h1>`, `Token ID`, `Project`, `Status`, `badge bg-success`}},
		{"TokenEdit", []string{`<h1>Edit Token</h1>`, `id="token_id"`, `id="project"`, `id="expires_at"`, `value="2026-03-04 06:06:07 UTC"`, `id="request_count"`, `id="is_active"`, `id="max_requests"`, `Update Token`, `Danger Zone`}},
		{"Audit", []string{`Audit Events</h1>`, `bi-shield-check`, `name="search"`, `placeholder="Search events…"`, `bi-search`, `table table-hover`, `href="/admin/audit/33333333-3333-3333-3333-333333333333"`, `bi-x-circle`}},
		{"AuditShow", []string{`<h1>Audit Event Details</h1>`, `Event #33333333-3333-3333-3333-333333333333`, `Back to List`, `Timestamp:`, `Action:`, `Actor:`, `Outcome:`, `IP Address:`, `<code>192.0.2.1</code>`, `Identifiers`, `Project ID`, `[redacted]`, `updated_fields`}},
	} {
		html := render(t, fx[tc.page])
		for _, w := range tc.want {
			if !strings.Contains(html, w) {
				t.Errorf("%s lacks %s", tc.page, w)
			}
		}
	}
	// Times: UTC in the markup, machine-readable for the script.
	html := render(t, Time(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), FmtYMDHM))
	want := `<time datetime="2026-01-02T03:04:05Z" data-local-time="true" data-ts="2026-01-02T03:04:05Z" data-format="ymd_hm" title="2026-01-02T03:04:05Z">2026-01-02 03:04 UTC</time>`
	if html != want {
		t.Errorf("Time = %s\nwant %s", html, want)
	}
}

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ key, want string }{
		{"api_key", "[redacted]"}, {"token", "[redacted]"}, {"token_hash", "[redacted]"}, {"management_token", "[redacted]"},
		{"Authorization", "[redacted]"}, {"token_id", "v"}, {"project_id", "v"}, {"revoked_count", "v"}, {"token_hint", "v"},
		{"updated_fields", "v"}, {"project_name", "v"}, {"max_requests", "v"},
	} {
		if got := Redact(tc.key, "v"); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.key, got, tc.want)
		}
	}
}

// TestLimitForms checks the limit fields: names as the API's, stored values
// shown (blank for unlimited), placeholders with the project's defaults, the
// rejected field marked, and the detail pages' "unlimited".
func TestLimitForms(t *testing.T) {
	fx := fixtures()
	input := func(html, id string) string {
		t.Helper()
		m := regexp.MustCompile(`<input[^>]*id="` + id + `"[^>]*>`).FindString(html)
		if m == "" {
			t.Fatalf("no input #%s", id)
		}
		return m
	}
	attr := func(tag, name string) (string, bool) {
		m := regexp.MustCompile(`\s` + name + `="([^"]*)"`).FindStringSubmatch(tag)
		if m == nil {
			return "", false
		}
		return m[1], true
	}
	for _, tc := range []struct {
		page, id, value, placeholder string
		invalid                      bool
	}{
		{"ProjectEdit", "limits_requests_per_minute", "120", "unlimited", false},
		{"ProjectEdit", "limits_requests_per_day", "", "unlimited", false},
		{"ProjectEdit", "limits_tokens_per_day", "500000", "unlimited", false},
		{"ProjectEdit", "token_defaults_requests_per_minute", "60", "unlimited", false},
		{"ProjectEdit", "token_defaults_tokens_per_minute", "10000", "unlimited", false},
		{"ProjectEdit", "token_defaults_tokens_per_day", "", "unlimited", false},
		{"ProjectEditInvalid", "limits_requests_per_day", "-5", "unlimited", true},
		{"ProjectEditInvalid", "limits_requests_per_minute", "120", "unlimited", false},
		{"TokenNew", "limits_requests_per_minute", "", "project default", false},
		{"TokenNewForProject", "limits_requests_per_minute", "", "project default: 60", false},
		{"TokenNewForProject", "limits_requests_per_day", "", "project default: unlimited", false},
		{"TokenNewForProject", "limits_tokens_per_day", "0", "project default: unlimited", false},
		{"TokenEdit", "limits_requests_per_day", "1000", "unlimited", false},
		{"TokenEdit", "limits_tokens_per_minute", "", "unlimited", false},
	} {
		html := render(t, fx[tc.page])
		in := input(html, tc.id)
		if name, _ := attr(in, "name"); name != tc.id {
			t.Errorf("%s #%s: name %q", tc.page, tc.id, name)
		}
		if v, _ := attr(in, "value"); v != tc.value {
			t.Errorf("%s #%s: value %q, want %q", tc.page, tc.id, v, tc.value)
		}
		if v, _ := attr(in, "placeholder"); v != tc.placeholder {
			t.Errorf("%s #%s: placeholder %q, want %q", tc.page, tc.id, v, tc.placeholder)
		}
		if _, inv := attr(in, "aria-invalid"); inv != tc.invalid || strings.Contains(in, "is-invalid") != tc.invalid {
			t.Errorf("%s #%s: marked invalid %v, want %v: %s", tc.page, tc.id, inv, tc.invalid, in)
		}
		if typ, _ := attr(in, "type"); typ != "number" {
			t.Errorf("%s #%s: type %q", tc.page, tc.id, typ)
		}
		if d, _ := attr(in, "aria-describedby"); d == "" || !strings.Contains(html, `id="`+d+`"`) {
			t.Errorf("%s #%s: aria-describedby %q names no element", tc.page, tc.id, d)
		}
	}
	if html := render(t, fx["ProjectEditInvalid"]); !strings.Contains(html, "requests per day must be a whole number") {
		t.Error("the validation message is not shown")
	}
	for _, tc := range []struct {
		page string
		want []string
	}{
		{"ProjectShow", []string{`<td>120</td>`, `<td>500000</td>`, `<td>10000</td>`, `unlimited`}},
		{"TokenShow", []string{`<th scope="row">Requests per day</th><td data-limit="requests_per_day">1000</td>`,
			`<th scope="row">Requests per minute</th><td data-limit="requests_per_minute">unlimited</td>`}},
		{"TokenCreated", []string{`<td data-limit="requests_per_minute">60</td>`, `<td data-limit="tokens_per_day">unlimited</td>`}},
	} {
		html := render(t, fx[tc.page])
		for _, w := range tc.want {
			if !strings.Contains(html, w) {
				t.Errorf("%s lacks %s", tc.page, w)
			}
		}
	}
}

// TestFormAccessibility: every visible input and select of every page has a
// label for its id, every fieldset a legend, and every form that posts
// carries the form token.
func TestFormAccessibility(t *testing.T) {
	field := regexp.MustCompile(`<(input|select|textarea)\b[^>]*>`)
	for name, c := range fixtures() {
		html := render(t, c)
		for _, tag := range field.FindAllString(html, -1) {
			if strings.Contains(tag, `type="hidden"`) {
				continue
			}
			m := regexp.MustCompile(`\sid="([^"]+)"`).FindStringSubmatch(tag)
			if m == nil {
				t.Errorf("%s: field without id: %s", name, tag)
				continue
			}
			if !strings.Contains(html, `<label for="`+m[1]+`"`) {
				t.Errorf("%s: no <label for=%q>", name, m[1])
			}
		}
		if n, l := strings.Count(html, "<fieldset"), strings.Count(html, "<legend"); n != l {
			t.Errorf("%s: %d fieldsets, %d legends", name, n, l)
		}
		forms := regexp.MustCompile(`(?s)<form method="post".*?</form>`).FindAllString(html, -1)
		for _, f := range forms {
			if !strings.Contains(f, `name="csrf_token" value="csrf-value"`) && name != "Login" {
				t.Errorf("%s: a post form without the form token: %.200s", name, f)
			}
		}
	}
}
