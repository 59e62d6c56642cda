package e2e

import (
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// TestPublicBaseURLInTokenExamples: the admin UI's new-token page and
// `llm-proxy manage token generate` show where clients reach the proxy:
// PUBLIC_BASE_URL + /v1 when set (a split deployment, where the admin UI's
// host serves no /v1), else the origin the admin UI or the CLI talks to.
func TestPublicBaseURLInTokenExamples(t *testing.T) {
	const mgmt = "public-url-test-management-token-0123"
	const public = "https://llm.example.com/"
	tests := []struct {
		name   string
		public string // PUBLIC_BASE_URL of serve and the CLI ("" unset)
		want   func(s *Serve) string
	}{
		{"set", public, func(*Serve) string { return "https://llm.example.com/v1" }},
		{"unset", "", func(s *Serve) string { return s.URL + "/v1" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"MANAGEMENT_TOKEN": mgmt}
			if tt.public != "" {
				env["PUBLIC_BASE_URL"] = tt.public
			}
			s := startServe(t, t.TempDir(), env)
			want := tt.want(s)
			var p struct{ ID string }
			if code := api(t, "POST", s.URL+"/manage/projects", mgmt, map[string]any{"name": "public-url", "api_key": "sk-public-url-upstream-0123456789"}, &p); code != http.StatusCreated {
				t.Fatalf("create project: %d", code)
			}

			if page := adminNewToken(t, s.URL+"/admin", mgmt, p.ID); !strings.Contains(page, "curl "+want+"/chat/completions") {
				t.Errorf("admin UI new-token page does not show curl %s/chat/completions:\n%s", want, page)
			}

			cliEnv := map[string]string{"MANAGEMENT_TOKEN": mgmt, "MANAGEMENT_API_BASE_URL": s.URL + "/"}
			if tt.public != "" {
				cliEnv["PUBLIC_BASE_URL"] = tt.public
			}
			out, stderr, code := cli(t, cliEnv, "manage", "token", "generate", "--project-id", p.ID)
			if code != 0 {
				t.Fatalf("token generate: exit %d\n%s%s", code, out, stderr)
			}
			m := regexp.MustCompile(`(?m)^Token:\s+(\S+)$`).FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("token generate printed no token:\n%s", out)
			}
			if line := "Use it: OPENAI_BASE_URL=" + want + " OPENAI_API_KEY=" + m[1] + "\n"; !strings.Contains(out, line) {
				t.Errorf("token generate does not print %q:\n%s", line, out)
			}
		})
	}
}

// adminSignIn signs in to the admin UI at admin (e.g. http://host/admin)
// and returns a client that keeps the session cookie.
func adminSignIn(t *testing.T, admin, mgmt string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	resp, err := browser.PostForm(admin+"/auth/login", url.Values{"management_token": {mgmt}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return browser
}

// adminNewToken signs in to the admin UI at admin, generates a token of
// project through its form and returns the page that shows it.
func adminNewToken(t *testing.T, admin, mgmt, project string) string {
	t.Helper()
	browser := adminSignIn(t, admin, mgmt)
	resp, err := browser.Get(admin + "/tokens/new?project_id=" + url.QueryEscape(project))
	if err != nil {
		t.Fatal(err)
	}
	form := readAll(t, resp)
	m := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindStringSubmatch(form)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("GET tokens/new: %d, form token found: %v", resp.StatusCode, m != nil)
	}
	resp, err = browser.PostForm(admin+"/tokens", url.Values{"csrf_token": {m[1]}, "project_id": {project}, "duration_minutes": {"60"}})
	if err != nil {
		t.Fatal(err)
	}
	page := readAll(t, resp)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST tokens: %d\n%s", resp.StatusCode, page)
	}
	return page
}
