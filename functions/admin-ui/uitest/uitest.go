// Package uitest drives the admin UI in a real headless Chromium (chromedp)
// and starts a real UI server over SQLite for tests. Its helpers are exported
// so that end-to-end suites (llm-proxy serve, the proxy) can reuse them: start
// a browser with NewBrowser, then SignIn, CreateProject, GenerateToken,
// RevokeToken, DeactivateProject, and Screenshot the pages they reach.
package uitest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	adminui "github.com/llm-proxy/llm-proxy/functions/admin-ui"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/management"
	"github.com/llm-proxy/llm-proxy/shared/mgmtauth"
	"github.com/llm-proxy/llm-proxy/shared/secrets"
	"github.com/llm-proxy/llm-proxy/shared/store/migrate"
	"github.com/llm-proxy/llm-proxy/shared/store/sqlite"
)

// ChromiumPath is where Debian's chromium package installs the browser.
const ChromiumPath = "/usr/bin/chromium"

// Server is an admin UI on a real SQLite store and management service,
// mounted under Base on an httptest server.
type Server struct {
	URL     string // the httptest server's origin, e.g. http://127.0.0.1:41234
	Base    string // the UI's base path, e.g. /admin
	Token   string // the management token
	Service *management.Service
	Store   *sqlite.Store
	Keyring *secrets.Keyring
	HTTP    *httptest.Server
}

// Admin returns the absolute URL of path under the UI's base path.
func (s *Server) Admin(path string) string { return s.URL + s.Base + path }

// Options tune StartServer.
type Options struct {
	Base   string       // the UI's base path, e.g. "/admin"; "" serves at the root
	Config config.Admin // zero values take the UI's defaults
	Clock  func() time.Time
	// Mount, when set, is called with the mux that serves the UI, to add
	// other handlers (the proxy, the management API) on the same origin.
	Mount func(mux *http.ServeMux, s *Server)
}

// StartServer starts the UI on a fresh SQLite database (migrated) in the
// test's temp dir. Everything is closed when the test ends.
func StartServer(t testing.TB, o Options) *Server {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "llm-proxy.db")
	if err := migrate.Up(ctx, "sqlite", path); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	st, err := sqlite.Open(ctx, config.Database{Driver: "sqlite", Path: path})
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	kr, err := secrets.NewKeyring(randomKey(), nil)
	if err != nil {
		t.Fatalf("keyring: %v", err)
	}
	svc := management.New(management.Deps{Store: st, Keyring: kr, Clock: o.Clock})
	s := &Server{Base: o.Base, Token: "mgmt-" + randomKey()[:20], Service: svc, Store: st, Keyring: kr}
	h, err := adminui.New(adminui.Deps{
		Service: svc, Reader: st, VerifyManagementToken: mgmtauth.StaticToken(s.Token),
		BasePath: o.Base, Config: o.Config, Clock: o.Clock,
		Log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatalf("admin ui: %v", err)
	}
	mux := http.NewServeMux()
	if o.Base == "" {
		mux.Handle("/", h)
	} else {
		mux.Handle(o.Base+"/", h)
		mux.Handle(o.Base, h)
	}
	if o.Mount != nil {
		o.Mount(mux, s)
	}
	s.HTTP = httptest.NewServer(mux)
	s.URL = s.HTTP.URL
	t.Cleanup(s.HTTP.Close)
	return s
}

func randomKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// Browser is a headless Chromium tab with the JavaScript dialogs it saw.
type Browser struct {
	Ctx context.Context
	t   testing.TB

	mu      sync.Mutex
	dialogs []string
}

// NewBrowser starts headless Chromium with a temporary profile. A missing
// browser fails the test with the command that installs it.
func NewBrowser(t testing.TB) *Browser {
	t.Helper()
	exe := ChromiumPath
	if _, err := os.Stat(exe); err != nil {
		p, lerr := exec.LookPath("chromium")
		if lerr != nil {
			t.Fatalf("headless Chromium not found at %s or on PATH: apt-get install -y chromium", ChromiumPath)
		}
		exe = p
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b := &Browser{Ctx: ctx, t: t}
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.dialogs = append(b.dialogs, ev.Message)
			b.mu.Unlock()
			// confirm() dialogs are answered with OK.
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	return b
}

// Dialogs returns the messages of the JavaScript dialogs seen so far.
func (b *Browser) Dialogs() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.dialogs...)
}

// Do runs actions, failing the test on error.
func (b *Browser) Do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v (at %s)", what, err, b.Location())
	}
}

// Location is the tab's current URL.
func (b *Browser) Location() string {
	ctx, cancel := context.WithTimeout(b.Ctx, 10*time.Second)
	defer cancel()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		return "?"
	}
	return loc
}

// Eval evaluates a JavaScript expression and returns its string value.
func (b *Browser) Eval(expr string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// Value returns the value of the input matched by a CSS selector.
func (b *Browser) Value(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("value of %s: %v", sel, err)
	}
	return v
}

// Text returns the text of the page's body.
func (b *Browser) Text() string {
	b.t.Helper()
	return b.Eval(`document.body ? document.body.innerText : ""`)
}

// WaitFor polls a JavaScript predicate until it is true (navigations in
// between are tolerated), failing the test after 30 s.
func (b *Browser) WaitFor(what, predicate string) {
	b.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(b.Ctx, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.readyState === "complete" && !!(`+predicate+`)`))
		cancel()
		if err == nil && ok {
			return
		}
		last = err
		<-tick.C
	}
	b.t.Fatalf("waiting for %s (%s): timed out at %s (last error %v); page text: %.500s", what, predicate, b.Location(), last, b.Text())
}

// WaitH1 waits for a page whose <h1> text is heading.
func (b *Browser) WaitH1(heading string) {
	b.t.Helper()
	b.WaitFor("heading "+heading, fmt.Sprintf(`document.querySelector("h1") && document.querySelector("h1").innerText.trim() === %q`, heading))
}

// Open navigates to url and waits for the page to load.
func (b *Browser) Open(url string) {
	b.t.Helper()
	b.Do("open "+url, chromedp.Navigate(url))
}

// Click clicks the element matched by a CSS selector.
func (b *Browser) Click(sel string) {
	b.t.Helper()
	b.Do("click "+sel, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}

// Fill types value into the input matched by a CSS selector (after
// clearing it).
func (b *Browser) Fill(sel, value string) {
	b.t.Helper()
	b.Do("fill "+sel, chromedp.Clear(chromedp.CSS(sel)), chromedp.SendKeys(chromedp.CSS(sel), value))
}

// Select sets a <select>'s value.
func (b *Browser) Select(sel, value string) {
	b.t.Helper()
	b.Do("select "+sel, chromedp.SetValue(chromedp.CSS(sel), value))
}

// ScreenshotDir is where screenshots go: $LLMPROXY_SCREENSHOT_DIR, else def.
func ScreenshotDir(def string) string {
	if d := os.Getenv("LLMPROXY_SCREENSHOT_DIR"); d != "" {
		return d
	}
	return def
}

// Screenshot saves a full-page PNG of the current page as dir/name.png.
func (b *Browser) Screenshot(dir, name string) string {
	b.t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatalf("screenshot dir: %v", err)
	}
	ctx, cancel := context.WithTimeout(b.Ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	return p
}

// SignIn signs in through the form at admin (the UI's absolute base URL,
// e.g. http://127.0.0.1:1234/admin) and waits for the dashboard.
func (b *Browser) SignIn(admin, token string) {
	b.t.Helper()
	b.Open(admin + "/auth/login")
	b.WaitFor("sign-in form", `document.querySelector("#management_token")`)
	b.Fill("#management_token", token)
	b.Click(`button[type="submit"]`)
	b.WaitH1("Dashboard")
}

// CreateProject creates a project through the form and returns its id (read
// from the URL of the project page it lands on).
func (b *Browser) CreateProject(admin, name, apiKey string) string {
	b.t.Helper()
	b.Open(admin + "/projects/new")
	b.WaitH1("Create Project")
	b.Fill("#name", name)
	b.Fill("#api_key", apiKey)
	b.Click(`form button[type="submit"].btn-primary`)
	b.WaitH1(name)
	loc := b.Location()
	id := lastSegment(loc)
	if id == "" {
		b.t.Fatalf("create project: no id in %s", loc)
	}
	return id
}

// GenerateToken generates a token for projectID through the form (lifetime
// in minutes, one of the form's values) and returns the token's id and its
// plaintext, read from the page that shows it once.
func (b *Browser) GenerateToken(admin, projectID, minutes string) (id, token string) {
	b.t.Helper()
	b.Open(admin + "/tokens/new?project_id=" + projectID)
	b.WaitH1("Generate Token")
	if minutes != "" {
		b.Select("#duration_minutes", minutes)
	}
	b.Click(`form button[type="submit"].btn-success`)
	b.WaitH1("Token Generated")
	token = b.Value("#new-token")
	href := b.Eval(`(document.querySelector('a.btn-secondary[href*="/tokens/"]') || {}).getAttribute ? document.querySelector('a.btn-secondary[href*="/tokens/"]').getAttribute("href") : ""`)
	id = lastSegment(href)
	if token == "" || id == "" {
		b.t.Fatalf("generate token: token or id missing (id %q)", id)
	}
	return id, token
}

// RevokeToken revokes a token from its page, accepting the confirm dialog.
func (b *Browser) RevokeToken(admin, tokenID string) {
	b.t.Helper()
	b.Open(admin + "/tokens/" + tokenID)
	b.WaitH1("Token Details")
	b.Click(`form[data-confirm] button.btn-danger`)
	b.WaitFor("revoked badge", `document.querySelector(".alert-success") && [...document.querySelectorAll(".badge")].some(e => e.innerText.trim() === "Revoked")`)
}

// DeactivateProject deactivates a project from its page.
func (b *Browser) DeactivateProject(admin, projectID string) {
	b.t.Helper()
	b.Open(admin + "/projects/" + projectID)
	b.WaitFor("deactivate button", `document.querySelector("#deactivate-project")`)
	b.Click("#deactivate-project")
	b.WaitFor("inactive badge", `document.querySelector("#activate-project") && [...document.querySelectorAll(".badge")].some(e => e.innerText.trim() === "Inactive")`)
}

// SignOut signs out with the navigation's button.
func (b *Browser) SignOut() {
	b.t.Helper()
	b.Click(`form.logout button[type="submit"]`)
	b.WaitFor("sign-in page", `document.querySelector("#management_token")`)
}

func lastSegment(u string) string {
	u, _, _ = strings.Cut(u, "?")
	u = strings.TrimRight(u, "/")
	i := strings.LastIndexByte(u, '/')
	if i < 0 {
		return ""
	}
	seg := u[i+1:]
	if seg == "new" || seg == "edit" {
		return ""
	}
	return seg
}
