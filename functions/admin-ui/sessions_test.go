package adminui_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	adminui "github.com/llm-proxy/llm-proxy/functions/admin-ui"
	"github.com/llm-proxy/llm-proxy/internal/testenv"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/management"
	"github.com/llm-proxy/llm-proxy/shared/mgmtauth"
	"github.com/llm-proxy/llm-proxy/shared/secrets"
	"github.com/llm-proxy/llm-proxy/shared/store/migrate"
	"github.com/llm-proxy/llm-proxy/shared/store/sqlite"
)

const (
	tokenA     = "admin-session-test-token-A-0123456789"
	tokenB     = "admin-session-test-token-B-9876543210"
	sessionKey = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

// cluster is a database shared by admin UI instances, as replicas (or one
// process before and after a restart) share it.
type cluster struct {
	t     *testing.T
	st    *sqlite.Store
	svc   *management.Service
	clock *testenv.Clock
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "llm-proxy.db")
	testenv.Must(t, migrate.Up(ctx, "sqlite", path))
	st, err := sqlite.Open(ctx, config.Database{Driver: "sqlite", Path: path})
	testenv.Must(t, err)
	t.Cleanup(func() { _ = st.Close() })
	kr, err := secrets.NewKeyring("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", nil)
	testenv.Must(t, err)
	clk := testenv.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	return &cluster{t: t, st: st, svc: management.New(management.Deps{Store: st, Keyring: kr, Clock: clk.Now}), clock: clk}
}

// instance starts an admin UI whose management token is token.
func (c *cluster) instance(token string) *httptest.Server {
	c.t.Helper()
	h, err := adminui.New(adminui.Deps{
		Service: c.svc, Reader: c.st, VerifyManagementToken: mgmtauth.StaticToken(token), BasePath: "/admin",
		Config: config.Admin{SessionKey: sessionKey, SessionIdle: 30 * time.Minute, SessionMax: 12 * time.Hour}.WithManagementToken(token),
		Clock:  c.clock.Now,
	})
	testenv.Must(c.t, err)
	srv := httptest.NewServer(h)
	c.t.Cleanup(srv.Close)
	return srv
}

var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// signIn returns the session cookie of a fresh sign-in on srv.
func openSession(t *testing.T, srv *httptest.Server, token string) *http.Cookie {
	t.Helper()
	resp, err := noRedirects.PostForm(srv.URL+"/admin/auth/login", url.Values{"management_token": {token}})
	testenv.Must(t, err)
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == adminui.CookieName && c.Value != "" {
			return c
		}
	}
	t.Fatalf("sign-in: %d, no session cookie", resp.StatusCode)
	return nil
}

// dashboard reports whether cookie opens the dashboard on srv, and returns
// its form token.
func dashboard(t *testing.T, srv *httptest.Server, cookie *http.Cookie) (bool, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", srv.URL+"/admin/dashboard", nil)
	req.AddCookie(cookie)
	resp, err := noRedirects.Do(req)
	testenv.Must(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	testenv.Must(t, err)
	if resp.StatusCode != http.StatusOK {
		return false, ""
	}
	m := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindStringSubmatch(string(body))
	if m == nil {
		t.Fatal("dashboard without a form token")
	}
	return true, m[1]
}

func post(t *testing.T, srv *httptest.Server, path string, cookie *http.Cookie, csrf string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", srv.URL+"/admin"+path, strings.NewReader(url.Values{"csrf_token": {csrf}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(cookie)
	resp, err := noRedirects.Do(req)
	testenv.Must(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// A signed-out cookie is refused by every instance at once and after a
// restart: the session is a database record, not a sealed cookie.
func TestSignOutEndsTheSessionEverywhere(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	a, b := c.instance(tokenA), c.instance(tokenA)
	cookie := openSession(t, a, tokenA)
	// The cookie is an unguessable id; the database keeps only its hash.
	if len(cookie.Value) < 40 || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode {
		t.Fatalf("cookie %+v", cookie)
	}
	sum := sha256.Sum256([]byte(cookie.Value))
	if _, err := c.st.GetAdminSession(context.Background(), hex.EncodeToString(sum[:])); err != nil {
		t.Fatalf("no record under the id's hash: %v", err)
	}
	if _, err := c.st.GetAdminSession(context.Background(), cookie.Value); err == nil {
		t.Fatal("the raw id is stored")
	}
	ok, csrf := dashboard(t, b, cookie)
	if !ok {
		t.Fatal("a session does not reach another instance")
	}
	if code := post(t, a, "/auth/logout", cookie, csrf); code != http.StatusSeeOther {
		t.Fatalf("sign-out: %d", code)
	}
	for name, srv := range map[string]*httptest.Server{"same instance": a, "other instance": b, "after a restart": c.instance(tokenA)} {
		if ok, _ := dashboard(t, srv, cookie); ok {
			t.Errorf("%s: the signed-out cookie still works", name)
		}
	}
}

// "Sign out everywhere" ends every session, other devices' included.
func TestSignOutEverywhere(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	a, b := c.instance(tokenA), c.instance(tokenA)
	laptop, phone := openSession(t, a, tokenA), openSession(t, b, tokenA)
	_, csrf := dashboard(t, a, laptop)
	if code := post(t, a, "/auth/logout-everywhere", laptop, "forged"); code != http.StatusForbidden {
		t.Fatalf("without the form token: %d", code)
	}
	if ok, _ := dashboard(t, b, phone); !ok {
		t.Fatal("a forged sign-out-everywhere ended a session")
	}
	if code := post(t, a, "/auth/logout-everywhere", laptop, csrf); code != http.StatusSeeOther {
		t.Fatalf("sign out everywhere: %d", code)
	}
	for name, cookie := range map[string]*http.Cookie{"laptop": laptop, "phone": phone} {
		for _, srv := range []*httptest.Server{a, b} {
			if ok, _ := dashboard(t, srv, cookie); ok {
				t.Errorf("%s: still signed in", name)
			}
		}
	}
	for _, cookie := range []*http.Cookie{laptop, phone} {
		if _, err := c.st.GetAdminSession(context.Background(), hashOf(cookie.Value)); err == nil {
			t.Error("a session record is left")
		}
	}
}

// Changing MANAGEMENT_TOKEN ends every session opened with the old one.
func TestTokenRotationEndsSessions(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	cookie := openSession(t, c.instance(tokenA), tokenA)
	rotated := c.instance(tokenB)
	if ok, _ := dashboard(t, rotated, cookie); ok {
		t.Fatal("a session of the old management token survives its rotation")
	}
	if ok, _ := dashboard(t, rotated, openSession(t, rotated, tokenB)); !ok {
		t.Fatal("a session of the new token does not work")
	}
	// A sign-in under the new token also ends the sessions of the old one
	// (what ends them where the token is known only at sign-in).
	old := openSession(t, c.instance(tokenA), tokenA)
	openSession(t, rotated, tokenB)
	if _, err := c.st.GetAdminSession(context.Background(), hashOf(old.Value)); err == nil {
		t.Fatal("a sign-in with the new token left a session of the old one")
	}
}

// Idle and absolute timeouts are enforced on the record.
func TestSessionTimeouts(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	srv := c.instance(tokenA)
	idle := openSession(t, srv, tokenA)
	c.clock.Advance(29 * time.Minute)
	if ok, _ := dashboard(t, srv, idle); !ok {
		t.Fatal("ended before the idle timeout")
	}
	c.clock.Advance(29 * time.Minute) // 29 min after the last request
	if ok, _ := dashboard(t, srv, idle); !ok {
		t.Fatal("activity does not extend the idle timeout")
	}
	c.clock.Advance(31 * time.Minute)
	if ok, _ := dashboard(t, srv, idle); ok {
		t.Fatal("alive after 31 idle minutes")
	}

	active := openSession(t, srv, tokenA)
	for range 12*4 - 1 { // a request every 15 minutes for 11 h 45 min
		c.clock.Advance(15 * time.Minute)
		if ok, _ := dashboard(t, srv, active); !ok {
			t.Fatalf("ended at %v", c.clock.Now())
		}
	}
	c.clock.Advance(15 * time.Minute)
	if ok, _ := dashboard(t, srv, active); ok {
		t.Fatal("alive after the absolute timeout (12 h)")
	}
}

func hashOf(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}
