package adminui_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/llm-proxy/llm-proxy/functions/admin-ui/uitest"
	"github.com/llm-proxy/llm-proxy/internal/testenv"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/management"
	"github.com/llm-proxy/llm-proxy/shared/store"
)

// client sends requests without following redirects and keeps the session
// cookie by hand.
type client struct {
	t      *testing.T
	srv    *uitest.Server
	cookie *http.Cookie
	csrf   string
}

type result struct {
	status int
	header http.Header
	body   string
}

func (c *client) do(method, path string, form url.Values, hdr map[string]string) result {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.srv.Admin(path), body)
	if err != nil {
		c.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if c.cookie != nil {
		req.AddCookie(c.cookie)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, ck := range resp.Cookies() {
		if ck.Name == "llmproxy_admin_session" {
			if ck.MaxAge < 0 || ck.Value == "" {
				c.cookie = nil
			} else {
				c.cookie = ck
			}
		}
	}
	if m := csrfRE.FindStringSubmatch(string(b)); m != nil {
		c.csrf = m[1]
	}
	return result{resp.StatusCode, resp.Header, string(b)}
}

var csrfRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func (c *client) get(path string) result { c.t.Helper(); return c.do("GET", path, nil, nil) }

// post sends a form with the session's form token.
func (c *client) post(path string, form url.Values) result {
	c.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf_token", c.csrf)
	return c.do("POST", path, form, nil)
}

func signIn(t *testing.T, srv *uitest.Server) *client {
	t.Helper()
	c := &client{t: t, srv: srv}
	r := c.do("POST", "/auth/login", url.Values{"management_token": {srv.Token}}, nil)
	if r.status != http.StatusSeeOther || r.header.Get("Location") != srv.Base+"/dashboard" {
		t.Fatalf("sign-in: %d %s", r.status, r.header.Get("Location"))
	}
	if c.cookie == nil {
		t.Fatal("sign-in set no session cookie")
	}
	if r := c.get("/dashboard"); r.status != http.StatusOK || c.csrf == "" {
		t.Fatalf("dashboard after sign-in: %d", r.status)
	}
	return c
}

func TestSignInAndCookie(t *testing.T) {
	t.Parallel()
	srv := uitest.StartServer(t, uitest.Options{Base: "/admin"})
	c := &client{t: t, srv: srv}

	for _, p := range []string{"/dashboard", "/projects", "/tokens", "/audit", "/projects/x"} {
		if r := c.get(p); r.status != http.StatusSeeOther || r.header.Get("Location") != "/admin/auth/login" {
			t.Errorf("GET %s signed out: %d → %q", p, r.status, r.header.Get("Location"))
		}
	}
	if r := c.get(""); r.status != http.StatusSeeOther || r.header.Get("Location") != "/admin/dashboard" {
		t.Errorf("GET /admin: %d → %q", r.status, r.header.Get("Location"))
	}

	r := c.do("POST", "/auth/login", url.Values{"management_token": {"wrong-token-value"}}, nil)
	if r.status != http.StatusUnauthorized || !strings.Contains(r.body, "Invalid management token") || strings.Contains(r.body, "wrong-token-value") {
		t.Errorf("wrong token: %d, echoed=%v", r.status, strings.Contains(r.body, "wrong-token-value"))
	}
	if r := c.do("POST", "/auth/login", url.Values{}, nil); r.status != http.StatusBadRequest {
		t.Errorf("empty token: %d, want 400", r.status)
	}
	if c.cookie != nil {
		t.Fatal("failed sign-in set a session")
	}

	r = c.do("POST", "/auth/login", url.Values{"management_token": {srv.Token}}, nil)
	if r.status != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", r.status)
	}
	ck := c.cookie
	if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Secure || ck.Path != "/admin/" {
		t.Fatalf("cookie = %+v, want HttpOnly, SameSite=Strict, not Secure over http, Path=/admin/", ck)
	}
	if strings.Contains(ck.Value, srv.Token) {
		t.Fatal("the cookie contains the management token")
	}
	// A tampered cookie is no session.
	tampered := *ck
	tampered.Value = ck.Value[:len(ck.Value)-2] + "AA"
	c2 := &client{t: t, srv: srv, cookie: &tampered}
	if r := c2.get("/dashboard"); r.status != http.StatusSeeOther {
		t.Errorf("tampered cookie: %d, want redirect to sign-in", r.status)
	}

	// Audit: one failure per bad attempt, one success.
	list, err := srv.Service.ListAudit(context.Background(), management.Actor{Name: "test"}, management.AuditQuery{Action: "admin.login"})
	if err != nil {
		t.Fatal(err)
	}
	outcomes := map[string]int{}
	for _, e := range list.Events {
		outcomes[e.Outcome]++
		if e.Actor != "admin_ui" {
			t.Errorf("actor %q", e.Actor)
		}
	}
	if outcomes["failure"] != 2 || outcomes["success"] != 1 {
		t.Errorf("admin.login outcomes = %v, want 2 failures and 1 success", outcomes)
	}
}

func TestSecureCookie(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mode   string
		header string
		want   bool
	}{
		{"auto", "", false},
		// The test server's peer is 127.0.0.1, which is not a trusted proxy
		// here, so the header is not believed.
		{"auto", "https", false},
		{"true", "", true},
		{"false", "https", false},
	} {
		srv := uitest.StartServer(t, uitest.Options{Base: "/admin", Config: config.Admin{SecureCookies: tc.mode}})
		c := &client{t: t, srv: srv}
		c.do("POST", "/auth/login", url.Values{"management_token": {srv.Token}}, map[string]string{"X-Forwarded-Proto": tc.header})
		if c.cookie == nil || c.cookie.Secure != tc.want {
			t.Errorf("mode %s, X-Forwarded-Proto %q: cookie %+v, want Secure=%v", tc.mode, tc.header, c.cookie, tc.want)
		}
	}
}

func TestSessionExpiry(t *testing.T) {
	t.Parallel()
	clk := testenv.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	cfg := config.Admin{SessionIdle: 30 * time.Minute, SessionMax: 2 * time.Hour}
	srv := uitest.StartServer(t, uitest.Options{Base: "/admin", Config: cfg, Clock: clk.Now})

	t.Run("idle", func(t *testing.T) {
		c := signIn(t, srv)
		clk.Advance(29 * time.Minute)
		if r := c.get("/dashboard"); r.status != http.StatusOK {
			t.Fatalf("after 29 idle minutes: %d", r.status)
		}
		clk.Advance(31 * time.Minute)
		r := c.get("/dashboard")
		if r.status != http.StatusSeeOther || r.header.Get("Location") != "/admin/auth/login?expired=1" {
			t.Fatalf("after 31 idle minutes: %d %q", r.status, r.header.Get("Location"))
		}
	})
	t.Run("absolute", func(t *testing.T) {
		c := signIn(t, srv)
		for range 7 { // active every 20 minutes: 140 minutes > 2 h
			clk.Advance(20 * time.Minute)
			c.get("/dashboard")
		}
		if r := c.get("/dashboard"); r.status != http.StatusSeeOther {
			t.Fatalf("after the absolute lifetime: %d", r.status)
		}
	})
}

func TestSignOut(t *testing.T) {
	t.Parallel()
	srv := uitest.StartServer(t, uitest.Options{Base: "/admin"})
	c := signIn(t, srv)
	old := c.cookie
	// Without the form token: refused.
	if r := c.do("POST", "/auth/logout", url.Values{}, nil); r.status != http.StatusForbidden {
		t.Fatalf("sign-out without form token: %d", r.status)
	}
	r := c.post("/auth/logout", nil)
	if r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/admin/auth/login") {
		t.Fatalf("sign-out: %d %q", r.status, r.header.Get("Location"))
	}
	// The old cookie no longer works.
	c.cookie = old
	if r := c.get("/dashboard"); r.status != http.StatusSeeOther {
		t.Fatalf("old cookie after sign-out: %d", r.status)
	}
	list, _ := srv.Service.ListAudit(context.Background(), management.Actor{Name: "test"}, management.AuditQuery{Action: "admin.logout"})
	if len(list.Events) != 1 {
		t.Errorf("admin.logout records: %d", len(list.Events))
	}
	// GET sign-out from another site only offers a button.
	c2 := signIn(t, srv)
	if r := c2.do("GET", "/auth/logout", nil, map[string]string{"Sec-Fetch-Site": "cross-site"}); r.status != http.StatusOK || !strings.Contains(r.body, "Do you want to sign out?") {
		t.Errorf("cross-site GET sign-out: %d", r.status)
	}
	if r := c2.get("/dashboard"); r.status != http.StatusOK {
		t.Errorf("session ended by a cross-site GET: %d", r.status)
	}
	if r := c2.do("GET", "/auth/logout", nil, map[string]string{"Sec-Fetch-Site": "same-origin"}); r.status != http.StatusSeeOther {
		t.Errorf("same-origin GET sign-out: %d", r.status)
	}
	if r := c2.get("/dashboard"); r.status != http.StatusSeeOther {
		t.Errorf("session alive after same-origin sign-out: %d", r.status)
	}
}

func TestCSRF(t *testing.T) {
	t.Parallel()
	srv := uitest.StartServer(t, uitest.Options{Base: "/admin"})
	c := signIn(t, srv)
	form := func(name string) url.Values {
		return url.Values{"name": {name}, "api_key": {"sk-test-key-0123456789abcdef"}, "csrf_token": {c.csrf}}
	}
	for _, tc := range []struct {
		name string
		form url.Values
		hdr  map[string]string
		want int
	}{
		{"no form token", url.Values{"name": {"a"}, "api_key": {"sk-test-key-0123456789abcdef"}}, nil, http.StatusForbidden},
		{"wrong form token", url.Values{"name": {"b"}, "api_key": {"sk-x-0123456789abcdef"}, "csrf_token": {"forged"}}, nil, http.StatusForbidden},
		{"cross-site fetch", form("c"), map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"same-site fetch", form("d"), map[string]string{"Sec-Fetch-Site": "same-site"}, http.StatusForbidden},
		{"foreign origin", form("e"), map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
		{"same origin", form("ok"), map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": srv.URL}, http.StatusSeeOther},
	} {
		r := c.do("POST", "/projects", tc.form, tc.hdr)
		if r.status != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, r.status, tc.want)
		}
	}
	ps, total, err := srv.Store.ListProjects(context.Background(), store.ProjectFilter{})
	if err != nil || total != 1 || ps[0].Name != "ok" {
		t.Fatalf("projects after CSRF attempts: %d (err %v), want only \"ok\"", total, err)
	}
}

func TestSignInRateLimit(t *testing.T) {
	t.Parallel()
	clk := testenv.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	srv := uitest.StartServer(t, uitest.Options{Base: "/admin", Clock: clk.Now,
		Config: config.Admin{LoginAttempts: 3, LoginWindow: time.Minute}})
	c := &client{t: t, srv: srv}
	// Empty forms (what another site can make a browser post) spend nothing.
	for range 20 {
		if r := c.do("POST", "/auth/login", url.Values{"management_token": {""}}, nil); r.status != http.StatusBadRequest {
			t.Fatalf("empty form: %d", r.status)
		}
	}
	for i := range 3 {
		if r := c.do("POST", "/auth/login", url.Values{"management_token": {"bad"}}, nil); r.status != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i+1, r.status)
		}
	}
	// Wrong tokens are refused now…
	for range 3 {
		r := c.do("POST", "/auth/login", url.Values{"management_token": {"bad"}}, nil)
		if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" || c.cookie != nil {
			t.Fatalf("blocked attempt: %d Retry-After=%q", r.status, r.header.Get("Retry-After"))
		}
	}
	// …the right one from the same address is not.
	if r := c.do("POST", "/auth/login", url.Values{"management_token": {srv.Token}}, nil); r.status != http.StatusSeeOther || c.cookie == nil {
		t.Fatalf("right token from a blocked address: %d", r.status)
	}
	list, _ := srv.Service.ListAudit(context.Background(), management.Actor{Name: "test"}, management.AuditQuery{Action: "admin.login", Outcome: "denied"})
	if len(list.Events) != 1 {
		t.Errorf("denied sign-in records: %d, want 1 (one per spent budget)", len(list.Events))
	}
	// Repeated failures are aggregated: the 20 empty forms and the 3 wrong
	// tokens write one record per reason until the window ends.
	list, _ = srv.Service.ListAudit(context.Background(), management.Actor{Name: "test"}, management.AuditQuery{Action: "admin.login", Outcome: "failure"})
	if len(list.Events) != 2 {
		t.Errorf("failed sign-in records: %d, want 2 (one per reason and window)", len(list.Events))
	}
}

func TestSecurityHeadersAndAssets(t *testing.T) {
	t.Parallel()
	srv := uitest.StartServer(t, uitest.Options{Base: "/admin"})
	c := &client{t: t, srv: srv}
	r := c.get("/auth/login")
	for k, want := range map[string]string{
		"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin", "Cache-Control": "no-store",
	} {
		if got := r.header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	csp := r.header.Get("Content-Security-Policy")
	for _, d := range []string{"default-src 'self'", "frame-ancestors 'none'", "script-src 'self'"} {
		if !strings.Contains(csp, d) {
			t.Errorf("CSP %q lacks %s", csp, d)
		}
	}
	if strings.Contains(r.body, "http://") || strings.Contains(r.body, "https://") || strings.Contains(r.body, "<script>") {
		t.Error("the page references another origin or has an inline script")
	}
	m := regexp.MustCompile(`href="(/admin/static/css/admin\.css\?v=\d+)"`).FindStringSubmatch(r.body)
	if m == nil {
		t.Fatal("no versioned stylesheet link")
	}
	for _, p := range []string{strings.TrimPrefix(m[1], "/admin"), "/static/js/admin.js", "/static/img/favicon.svg"} {
		r := c.get(p)
		if r.status != http.StatusOK || r.body == "" {
			t.Errorf("GET %s: %d", p, r.status)
		}
	}
	if r := c.get("/static/"); r.status == http.StatusOK {
		t.Error("static directory listing served")
	}
}

func TestRootBasePath(t *testing.T) {
	t.Parallel()
	srv := uitest.StartServer(t, uitest.Options{Base: ""})
	c := signIn(t, srv)
	r := c.get("/projects")
	if r.status != http.StatusOK || strings.Contains(r.body, `"/admin`) || !strings.Contains(r.body, `href="/projects/new"`) {
		t.Fatalf("root-mounted projects page: %d %s", r.status, r.body)
	}
	if c.cookie.Path != "/" {
		t.Errorf("cookie path %q", c.cookie.Path)
	}
}

// TestNoSecretsOnAnyPage renders every page of a project with a token and
// asserts that neither the upstream key (plaintext or ciphertext) nor the
// token (plaintext or stored hash) appears, except the plaintext once on the
// creation answer.
func TestNoSecretsOnAnyPage(t *testing.T) {
	t.Parallel()
	srv := uitest.StartServer(t, uitest.Options{Base: "/admin"})
	c := signIn(t, srv)
	const apiKey = "sk-proj-UPSTREAMSECRET-0123456789abcdefghij"
	r := c.post("/projects", url.Values{"name": {"Secret Project"}, "api_key": {apiKey}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("create project: %d %s", r.status, r.body)
	}
	projectPath := strings.TrimPrefix(strings.Split(r.header.Get("Location"), "?")[0], "/admin")
	projectID := strings.TrimPrefix(projectPath, "/projects/")
	r = c.post("/tokens", url.Values{"project_id": {projectID}, "duration_minutes": {"1440"}, "max_requests": {"5"}})
	if r.status != http.StatusCreated {
		t.Fatalf("create token: %d", r.status)
	}
	token := regexp.MustCompile(`id="new-token"[^>]*value="([^"]+)"`).FindStringSubmatch(r.body)
	if token == nil {
		t.Fatal("token not shown on creation")
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Error("token creation answer may be cached")
	}
	st, err := srv.Store.GetTokenByHash(context.Background(), srv.Keyring.HashToken(token[1]))
	if err != nil {
		t.Fatal(err)
	}
	p, err := srv.Store.GetProject(context.Background(), projectID)
	if err != nil {
		t.Fatal(err)
	}
	// Edit the key too, so the new key is another secret to look for.
	const newKey = "sk-proj-ROTATEDSECRET-abcdefghij0123456789"
	if r := c.post(projectPath, url.Values{"_method": {"PUT"}, "name": {"Secret Project"}, "api_key": {newKey}, "is_active": {"false", "true"}}); r.status != http.StatusSeeOther {
		t.Fatalf("edit project: %d", r.status)
	}
	p2, _ := srv.Store.GetProject(context.Background(), projectID)
	secrets := map[string]string{
		"upstream key": apiKey, "new upstream key": newKey, "key ciphertext": p.APIKeyEncrypted,
		"new key ciphertext": p2.APIKeyEncrypted, "token": token[1], "token hash": st.Hash,
	}
	pages := []string{"/dashboard", "/projects", "/projects?search=Secret", projectPath, projectPath + "/edit",
		"/tokens", "/tokens?project_id=" + projectID, "/tokens/" + st.ID, "/tokens/" + st.ID + "/edit",
		"/tokens/new?project_id=" + projectID, "/audit", "/audit?search=token"}
	list, err := srv.Service.ListAudit(context.Background(), management.Actor{Name: "test"}, management.AuditQuery{PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range list.Events {
		pages = append(pages, "/audit/"+e.ID)
	}
	for _, path := range pages {
		r := c.get(path)
		if r.status != http.StatusOK {
			t.Errorf("GET %s: %d", path, r.status)
			continue
		}
		for what, s := range secrets {
			if s != "" && strings.Contains(r.body, s) {
				t.Errorf("GET %s shows the %s", path, what)
			}
		}
	}
	// The key was rotated and the field stayed empty on the edit form.
	if p2.APIKeyEncrypted == p.APIKeyEncrypted || !p2.IsActive {
		t.Error("edit did not rotate the key or lost is_active")
	}
}

// TestActionsWithoutJavaScript posts the forms as a browser without
// JavaScript would: destructive actions first answer with a confirmation
// page, then act.
func TestActionsWithoutJavaScript(t *testing.T) {
	t.Parallel()
	srv := uitest.StartServer(t, uitest.Options{Base: "/admin"})
	c := signIn(t, srv)
	r := c.post("/projects", url.Values{"name": {"NoJS"}, "api_key": {"sk-nojs-0123456789abcdef"}})
	projectPath := strings.TrimPrefix(strings.Split(r.header.Get("Location"), "?")[0], "/admin")
	projectID := strings.TrimPrefix(projectPath, "/projects/")
	r = c.post("/tokens", url.Values{"project_id": {projectID}, "duration_minutes": {"15"}})
	if r.status != http.StatusCreated {
		t.Fatalf("create token: %d", r.status)
	}
	toks, _, _ := srv.Store.ListTokens(context.Background(), store.TokenFilter{ProjectID: projectID})
	tokenPath := "/tokens/" + toks[0].ID

	// Edit: max_requests and expiry; unchecking is_active deactivates.
	expires := time.Now().UTC().Add(30 * 24 * time.Hour).Truncate(time.Minute)
	r = c.post(tokenPath, url.Values{"_method": {"PUT"}, "is_active": {"false"}, "max_requests": {"7"}, "new_expires_at": {expires.Format("2006-01-02T15:04")}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("edit token: %d %s", r.status, r.body)
	}
	tok, _ := srv.Store.GetToken(context.Background(), toks[0].ID)
	if tok.IsActive || tok.MaxRequests == nil || *tok.MaxRequests != 7 || !tok.ExpiresAt.Equal(expires) {
		t.Fatalf("token after edit: active=%v max=%v expires=%v", tok.IsActive, tok.MaxRequests, tok.ExpiresAt)
	}
	// Reactivate keeps max_requests (the original reset it).
	c.post(tokenPath, url.Values{"_method": {"PATCH"}, "is_active": {"true"}})
	tok, _ = srv.Store.GetToken(context.Background(), toks[0].ID)
	if !tok.IsActive || tok.MaxRequests == nil || *tok.MaxRequests != 7 {
		t.Fatalf("reactivate: active=%v max=%v", tok.IsActive, tok.MaxRequests)
	}

	// Revoke: confirmation page first.
	r = c.post(tokenPath, url.Values{"_method": {"DELETE"}})
	if r.status != http.StatusOK || !strings.Contains(r.body, "Are you sure you want to revoke token") || !strings.Contains(r.body, "This action cannot be undone.") {
		t.Fatalf("revoke without confirmation: %d", r.status)
	}
	if tok, _ := srv.Store.GetToken(context.Background(), toks[0].ID); !tok.IsActive {
		t.Fatal("revoked before confirmation")
	}
	if r := c.post(tokenPath, url.Values{"_method": {"DELETE"}, "confirm": {"yes"}}); r.status != http.StatusSeeOther {
		t.Fatalf("confirmed revoke: %d", r.status)
	}
	if tok, _ := srv.Store.GetToken(context.Background(), toks[0].ID); tok.IsActive {
		t.Fatal("not revoked")
	}

	// Revoke all: confirmation text of the original.
	r = c.post(projectPath+"/revoke-tokens", nil)
	if !strings.Contains(r.body, "Are you sure you want to revoke ALL tokens for project &#34;NoJS&#34;?") {
		t.Errorf("revoke-all confirmation: %d", r.status)
	}
	if r := c.post(projectPath+"/revoke-tokens", url.Values{"confirm": {"yes"}}); r.status != http.StatusSeeOther {
		t.Errorf("confirmed revoke-all: %d", r.status)
	}
	// Deleting a project is refused.
	if r := c.post(projectPath, url.Values{"_method": {"DELETE"}}); r.status != http.StatusMethodNotAllowed {
		t.Errorf("delete project: %d", r.status)
	}
	// Validation errors come back on the form, with the input kept.
	r = c.post("/projects", url.Values{"name": {"NoJS"}, "api_key": {"sk-dup-0123456789abcdef"}})
	if r.status != http.StatusConflict || !strings.Contains(r.body, `value="NoJS"`) || strings.Contains(r.body, "sk-dup-0123456789abcdef") {
		t.Errorf("duplicate project: %d", r.status)
	}
	// Unknown ids are a 404 page.
	if r := c.get("/tokens/00000000-0000-0000-0000-000000000000"); r.status != http.StatusNotFound {
		t.Errorf("unknown token: %d", r.status)
	}
}

// TestNotFoundKeepsNavigation: an unknown page, signed in, is a 404 page
// with the navigation bar and the sign-out form, like every other page.
func TestNotFoundKeepsNavigation(t *testing.T) {
	t.Parallel()
	for _, base := range []string{"/admin", ""} {
		srv := uitest.StartServer(t, uitest.Options{Base: base})
		c := signIn(t, srv)
		r := c.get("/no-such-page")
		if r.status != http.StatusNotFound || !strings.Contains(r.body, "There is no such page.") {
			t.Fatalf("base %q: GET /no-such-page: %d", base, r.status)
		}
		for _, want := range []string{`<nav aria-label="Main">`, `href="` + base + `/projects"`, `action="` + base + `/auth/logout"`} {
			if !strings.Contains(r.body, want) {
				t.Errorf("base %q: the 404 page lacks %s", base, want)
			}
		}
	}
}
