package e2e

import (
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Issue 21, findings 1 and 2, through llm-proxy serve.

const (
	securityToken = "e2e-security-management-token-0123456789"
	rotatedToken  = "e2e-security-rotated-token-9876543210abc"
)

var noFollow = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func status(t *testing.T, method, u, bearer string, cookie *http.Cookie, form url.Values) (int, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if form != nil && strings.HasSuffix(u, "/auth/login") {
		for _, c := range resp.Cookies() {
			if c.Value != "" {
				return resp.StatusCode, c.Name + "=" + c.Value
			}
		}
	}
	return resp.StatusCode, string(b)
}

// The "12 <img> tags" attack: anonymous requests and wrong tokens never
// lock the operator's token out.
func TestServeManagementCannotBeLockedOut(t *testing.T) {
	s := startServe(t, t.TempDir(), map[string]string{"MANAGEMENT_TOKEN": securityToken, "MANAGEMENT_AUTH_FAILURE_LIMIT": "3"})
	for range 12 {
		if code, _ := status(t, "GET", s.URL+"/manage/projects", "", nil, nil); code != http.StatusUnauthorized {
			t.Fatalf("anonymous: %d", code)
		}
	}
	if code, body := status(t, "GET", s.URL+"/manage/projects", securityToken, nil, nil); code != http.StatusOK {
		t.Fatalf("right token after 12 anonymous requests: %d %s", code, body)
	}
	for range 5 {
		status(t, "GET", s.URL+"/manage/projects", "wrong-token", nil, nil)
	}
	if code, _ := status(t, "GET", s.URL+"/manage/projects", "wrong-token", nil, nil); code != http.StatusTooManyRequests {
		t.Fatalf("wrong token after the budget: %d, want 429", code)
	}
	if code, _ := status(t, "GET", s.URL+"/manage/projects", securityToken, nil, nil); code != http.StatusOK {
		t.Fatalf("right token from the blocked address: %d", code)
	}
}

func TestServeRefusesAWeakManagementToken(t *testing.T) {
	_, stderr, code := cli(t, map[string]string{"MANAGEMENT_TOKEN": "short-token", "DATA_DIR": t.TempDir()}, "serve")
	if code == 0 || !strings.Contains(stderr, "MANAGEMENT_TOKEN") || !strings.Contains(stderr, "32") || strings.Contains(stderr, "short-token") {
		t.Fatalf("exit %d, stderr %q: want a refusal naming MANAGEMENT_TOKEN and its minimum length", code, stderr)
	}
}

// A signed-out admin cookie stays signed out after a restart, and a
// restart with another MANAGEMENT_TOKEN ends the sessions of the old one.
func TestServeAdminSessionsEnd(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"MANAGEMENT_TOKEN": securityToken}
	s := startServe(t, dir, env)
	admin := s.URL + "/admin"
	signIn := func(token string) *http.Cookie {
		code, kv := status(t, "POST", admin+"/auth/login", "", nil, url.Values{"management_token": {token}})
		name, value, ok := strings.Cut(kv, "=")
		if code != http.StatusSeeOther || !ok {
			t.Fatalf("sign-in: %d %q", code, kv)
		}
		return &http.Cookie{Name: name, Value: value}
	}
	dashboard := func(c *http.Cookie) (bool, string) {
		code, body := status(t, "GET", admin+"/dashboard", "", c, nil)
		m := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindStringSubmatch(body)
		if code != http.StatusOK || m == nil {
			return false, ""
		}
		return true, m[1]
	}
	restart := func(env map[string]string) {
		s.Signal(syscall.SIGTERM)
		if code := s.Wait(30 * time.Second); code != 0 {
			t.Fatalf("serve exited %d: %s", code, s.Stderr())
		}
		s = startServe(t, dir, env)
		admin = s.URL + "/admin"
	}

	out, kept := signIn(securityToken), signIn(securityToken)
	ok, csrf := dashboard(out)
	if !ok {
		t.Fatal("fresh session refused")
	}
	if code, _ := status(t, "POST", admin+"/auth/logout", "", out, url.Values{"csrf_token": {csrf}}); code != http.StatusSeeOther {
		t.Fatalf("sign-out: %d", code)
	}
	restart(env)
	if ok, _ := dashboard(out); ok {
		t.Fatal("a signed-out cookie works again after a restart")
	}
	if ok, _ := dashboard(kept); !ok {
		t.Fatal("a live session did not survive the restart")
	}
	restart(map[string]string{"MANAGEMENT_TOKEN": rotatedToken})
	if ok, _ := dashboard(kept); ok {
		t.Fatal("a session survives the rotation of MANAGEMENT_TOKEN")
	}
	rotated := signIn(rotatedToken)
	if ok, _ := dashboard(rotated); !ok {
		t.Fatal("the new token's session is refused")
	}
	// From MANAGEMENT_TOKEN to the token serve generates: the sessions of
	// the configured one end too.
	restart(map[string]string{})
	if ok, _ := dashboard(rotated); ok {
		t.Fatal("a session survives the switch to the generated token")
	}
	generated := mgmtTokenRE.FindStringSubmatch(s.Stdout())
	if generated == nil {
		t.Fatalf("no generated token printed: %s", s.Stdout())
	}
	if ok, _ := dashboard(signIn(generated[1])); !ok {
		t.Fatal("the generated token's session is refused")
	}
}
