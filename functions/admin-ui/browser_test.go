package adminui_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/llm-proxy/llm-proxy/functions/admin-ui/uitest"
	"github.com/llm-proxy/llm-proxy/internal/testenv"
	"github.com/llm-proxy/llm-proxy/shared/management"
	"github.com/llm-proxy/llm-proxy/shared/store"
)

// TestBrowserWorkflow drives the real UI, mounted under /admin/, in headless
// Chromium: sign in (wrong, then right), create a project, generate a token
// and read it once, revoke it, deactivate the project, set its limits, find
// it all in the audit list, fail a cross-origin form post, sign out. Screenshots of the
// main pages go to $LLMPROXY_SCREENSHOT_DIR or testdata/screenshots.
func TestBrowserWorkflow(t *testing.T) {
	testenv.NeedsService(t, "headless Chromium")
	srv := uitest.StartServer(t, uitest.Options{Base: "/admin"})
	b := uitest.NewBrowser(t)
	admin := srv.Admin("")
	shots := uitest.ScreenshotDir("testdata/screenshots")

	// Unauthenticated pages lead to the sign-in form.
	b.Open(admin + "/dashboard")
	b.WaitFor("sign-in form", `document.querySelector("#management_token")`)
	if title := b.Eval(`document.title`); !strings.Contains(title, "Sign In") {
		t.Errorf("title = %q, want Sign In", title)
	}
	if !strings.HasSuffix(b.Location(), "/admin/auth/login") {
		t.Errorf("location = %s, want /admin/auth/login", b.Location())
	}
	// Assets load from the base path with a numeric version, and the
	// stylesheet applies (no CDN: the CSP would block it anyway).
	if css := b.Eval(`document.querySelector('link[rel=stylesheet]').getAttribute("href")`); !strings.HasPrefix(css, "/admin/static/css/admin.css?v=") {
		t.Errorf("stylesheet href = %q", css)
	}
	if ok := b.Eval(`String(getComputedStyle(document.querySelector(".btn-primary")).backgroundColor !== "rgba(0, 0, 0, 0)")`); ok != "true" {
		t.Error("stylesheet not applied")
	}

	// Wrong token.
	b.Fill("#management_token", "not-the-token")
	b.Click(`button[type="submit"]`)
	b.WaitFor("error", `document.querySelector(".alert-danger")`)
	if txt := b.Text(); !strings.Contains(txt, "Invalid management token") {
		t.Errorf("wrong token page: %.300s", txt)
	}
	if v := b.Value("#management_token"); v != "" {
		t.Errorf("the submitted token is echoed back: %q", v)
	}
	b.Screenshot(shots, "01-sign-in-error")

	// Right token.
	b.SignIn(admin, srv.Token)
	b.Screenshot(shots, "02-dashboard-empty")

	projectName := fmt.Sprintf("Browser Project %s", t.Name()[4:12])
	apiKey := "sk-proj-BROWSERSECRET0123456789abcdefXYZ"
	projectID := b.CreateProject(admin, projectName, apiKey)
	if txt := b.Text(); strings.Contains(txt, apiKey) || !strings.Contains(txt, "Project created") {
		t.Errorf("project page shows the key or no confirmation: %.400s", txt)
	}
	b.Screenshot(shots, "03-project")

	// Generate a token: shown once.
	tokenID, token := b.GenerateToken(admin, projectID, "60")
	b.Screenshot(shots, "04-token-generated")
	if !strings.HasPrefix(b.Location(), admin+"/tokens") {
		t.Errorf("token created at %s", b.Location())
	}
	st, err := srv.Store.GetTokenByHash(context.Background(), srv.Keyring.HashToken(token))
	if err != nil || st.ID != tokenID {
		t.Fatalf("the token shown (%d chars) is not the stored one: %v", len(token), err)
	}
	b.Open(admin + "/tokens/" + tokenID)
	b.WaitH1("Token Details")
	if txt := b.Text(); strings.Contains(txt, token) {
		t.Error("token details page shows the plaintext token")
	}
	b.Open(admin + "/tokens")
	b.WaitH1("Tokens")
	if txt := b.Text(); strings.Contains(txt, token) || !strings.Contains(txt, "∞") {
		t.Errorf("token list shows the plaintext or no ∞: %.400s", txt)
	}
	b.Screenshot(shots, "05-tokens")

	// Local times: converted by the script, UTC kept in title.
	if got := b.Eval(`(() => { const e = document.querySelector('table [data-local-time="true"]'); return e.getAttribute("title") === e.getAttribute("data-ts") ? "ok" : "bad"; })()`); got != "ok" {
		t.Error("time title is not the UTC value")
	}

	// Revoke with the confirm dialog.
	b.RevokeToken(admin, tokenID)
	if d := b.Dialogs(); !slices.ContainsFunc(d, func(m string) bool { return strings.Contains(m, "revoke token") }) {
		t.Errorf("confirm dialogs = %q, want one asking to revoke the token", d)
	}
	if tok, err := srv.Store.GetToken(context.Background(), tokenID); err != nil || tok.IsActive {
		t.Fatalf("token still active after revocation (err %v)", err)
	}
	b.Screenshot(shots, "06-token-revoked")

	// Deactivate the project.
	b.DeactivateProject(admin, projectID)
	if p, err := srv.Store.GetProject(context.Background(), projectID); err != nil || p.IsActive {
		t.Fatalf("project still active (err %v)", err)
	}
	b.Screenshot(shots, "07-project-inactive")

	// The edit page never shows the key and has the original's fields.
	b.Open(admin + "/projects/" + projectID + "/edit")
	b.WaitH1("Edit Project")
	if v := b.Value("#api_key"); v != "" {
		t.Errorf("edit form pre-fills the key: %q", v)
	}
	// Limits: labelled number fields in two fieldsets; set a project limit
	// and a default for new tokens, and see them on the project's page.
	if got := b.Eval(`(() => { const f = [...document.querySelectorAll("fieldset.limits")];
		return f.map(s => s.querySelector("legend").innerText.trim() + ":" + [...s.querySelectorAll("input")].filter(i => i.type === "number" && i.labels.length === 1).length).join("|"); })()`); got != "Project limits:4|Defaults for new tokens:4" {
		t.Errorf("limit fieldsets = %q", got)
	}
	b.Fill("#limits_requests_per_minute", "120")
	b.Fill("#token_defaults_tokens_per_day", "50000")
	b.Screenshot(shots, "08-project-edit")
	b.Click(`form button[type="submit"].btn-primary`)
	b.WaitH1(projectName)
	if got := b.Eval(`[...document.querySelectorAll('section[aria-labelledby="limits"] tbody tr')].map(r => [...r.children].map(c => c.innerText.trim()).join("=")).join("|")`); got !=
		"Requests / minute=120=unlimited|Requests / day=unlimited=unlimited|Model tokens / minute=unlimited=unlimited|Model tokens / day=unlimited=50000" {
		t.Errorf("limits on the project page = %q", got)
	}
	if txt := b.Text(); !strings.Contains(txt, "Project updated") {
		t.Errorf("no confirmation after editing limits: %.300s", txt)
	}
	if p, err := srv.Store.GetProject(context.Background(), projectID); err != nil || p.Limits.RequestsPerMinute != 120 || p.TokenDefaults.TokensPerDay != 50000 || p.IsActive {
		t.Errorf("stored after editing limits: limits %+v defaults %+v active %v (err %v)", p.Limits, p.TokenDefaults, p.IsActive, err)
	}
	b.Screenshot(shots, "08b-project-limits")

	// Cross-origin form post from another origin (same host, other port:
	// the SameSite=Strict cookie is sent, so only the CSRF protection stops
	// it).
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!DOCTYPE html><html><body><form method="post" action="%s/projects">
<input name="name" value="evil-project"><input name="api_key" value="sk-evil-key-0123456789">
</form><script>document.forms[0].submit()</script></body></html>`, admin)
	}))
	defer evil.Close()
	b.Open(evil.URL)
	b.WaitFor("refusal", `location.href.startsWith(`+jsString(admin)+`) && document.body.innerText.includes("Cross-origin request refused")`)
	b.Screenshot(shots, "09-csrf-refused")
	list, _, err := srv.Store.ListProjects(context.Background(), store.ProjectFilter{Search: "evil"})
	if err != nil || len(list) != 0 {
		t.Fatalf("cross-origin post created a project (err %v)", err)
	}

	// The audit list shows what happened, with the free-text search.
	b.Open(admin + "/audit")
	b.WaitH1("Audit Events")
	txt := b.Text()
	for _, action := range []string{"admin.login", "project.create", "token.create", "token.revoke", "project.update"} {
		if !strings.Contains(txt, action) {
			t.Errorf("audit list lacks %s", action)
		}
	}
	if got := b.Eval(`[...document.querySelectorAll("table.table-hover thead th")].map(e => e.textContent.trim()).join("|")`); got != "Time|Action|Actor|Outcome|IP Address|Actions" {
		t.Errorf("audit headers = %q", got)
	}
	b.Screenshot(shots, "10-audit")
	b.Fill(`input[name="search"]`, "revoke")
	b.Click(`form[role=search] button[type="submit"]`)
	b.WaitFor("search results", `location.search.includes("search=revoke")`)
	if txt := b.Text(); !strings.Contains(txt, "token.revoke") || strings.Contains(txt, "project.create") {
		t.Errorf("search=revoke results: %.600s", txt)
	}
	// A failed sign-in is in the trail too.
	b.Open(admin + "/audit?action=admin.login&outcome=failure")
	b.WaitH1("Audit Events")
	b.Click(`a[href^="/admin/audit/"]`)
	b.WaitH1("Audit Event Details")
	if txt := b.Text(); !strings.Contains(txt, "invalid management token") || strings.Contains(txt, "not-the-token") {
		t.Errorf("failed sign-in detail: %.600s", txt)
	}
	b.Screenshot(shots, "11-audit-detail")

	b.Open(admin + "/dashboard")
	b.WaitH1("Dashboard")
	b.Screenshot(shots, "12-dashboard")

	b.SignOut()
	b.Open(admin + "/projects")
	b.WaitFor("sign-in form after sign-out", `document.querySelector("#management_token")`)

	evs, err := srv.Service.ListAudit(context.Background(), management.Actor{Name: "test"}, management.AuditQuery{Action: "admin.logout"})
	if err != nil || len(evs.Events) != 1 {
		t.Errorf("admin.logout records = %d (err %v), want 1", len(evs.Events), err)
	}
}

func jsString(s string) string { return fmt.Sprintf("%q", s) }
