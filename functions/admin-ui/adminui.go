// Package adminui is the admin web UI: server-rendered pages (templ
// components from /templates) over the management service, used directly
// (no HTTP hop to the management API).
//
// Base path: New serves every route under Deps.BasePath ("" at the root,
// "/admin" in llm-proxy serve) and expects requests with the FULL path, not
// stripped: mount it with mux.Handle(base+"/", h) (and mux.Handle(base, h) to
// redirect the bare base path), never behind http.StripPrefix. Every link,
// form and redirect it renders starts with the base path.
//
// Security: sign-in with the management token (checked once, never stored);
// a session is a database record (the cookie, HttpOnly, SameSite=Strict,
// Secure per ADMIN_UI_SECURE_COOKIES, carries only a random id whose hash is
// the key), so sign-out ends it on every instance; idle and absolute expiry
// are enforced on the record, a session opened with another management token
// is refused, and "sign out everywhere" ends them all; every state change passes http.CrossOriginProtection and a
// per-session form token; wrong tokens at sign-in spend a failure budget per
// client IP and a global one (shared through Redis when configured; the
// right token is never refused, an empty form spends nothing), and every
// sign-in, failure and sign-out is audited. Pages carry a strict CSP
// (no inline script, nothing from other origins).
package adminui

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/a-h/templ"
	"github.com/redis/go-redis/v9"

	"github.com/llm-proxy/llm-proxy/shared/audit"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/failbudget"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/management"
	"github.com/llm-proxy/llm-proxy/shared/mgmtapi"
	"github.com/llm-proxy/llm-proxy/shared/store"
	"github.com/llm-proxy/llm-proxy/shared/web"
	"github.com/llm-proxy/llm-proxy/templates"
)

//go:embed static
var staticFS embed.FS

// maxTrackedClients bounds the memory of the sign-in failure budget.
const maxTrackedClients = 10000

// Service is what the UI needs of the management service
// (*management.Service satisfies it). Every call is audited by the service
// with the actor "admin_ui".
type Service interface {
	CreateProject(ctx context.Context, a management.Actor, in management.CreateProjectInput) (mgmtapi.Project, error)
	GetProject(ctx context.Context, a management.Actor, id string) (mgmtapi.Project, error)
	ListProjects(ctx context.Context, a management.Actor, q management.ProjectQuery) (management.ProjectList, error)
	UpdateProject(ctx context.Context, a management.Actor, id string, in management.UpdateProjectInput) (mgmtapi.Project, error)
	RevokeProjectTokens(ctx context.Context, a management.Actor, projectID string) (management.RevokeResult, error)
	CreateToken(ctx context.Context, a management.Actor, in management.CreateTokenInput) (mgmtapi.CreatedToken, error)
	GetToken(ctx context.Context, a management.Actor, id string) (mgmtapi.Token, error)
	ListTokens(ctx context.Context, a management.Actor, q management.TokenQuery) (management.TokenList, error)
	UpdateToken(ctx context.Context, a management.Actor, id string, in management.UpdateTokenInput) (mgmtapi.Token, error)
	RevokeToken(ctx context.Context, a management.Actor, id string) error
	ListAudit(ctx context.Context, a management.Actor, q management.AuditQuery) (mgmtapi.AuditList, error)
	GetAudit(ctx context.Context, a management.Actor, id string) (mgmtapi.AuditEvent, error)
	// Recorder builds and writes audit records (sign-in, sign-out).
	Recorder() *audit.Recorder
}

// Reader is read-only store access for what is not an action of its own:
// dashboard counts and project names next to tokens. These reads are not
// audited (store.Store satisfies it; pass management.Service.Store()).
type Reader interface {
	GetProject(ctx context.Context, id string) (llmproxy.Project, error)
	ListProjects(ctx context.Context, f store.ProjectFilter) ([]llmproxy.Project, int, error)
	ListTokens(ctx context.Context, f store.TokenFilter) ([]llmproxy.Token, int, error)
	ListAudit(ctx context.Context, f store.AuditFilter) ([]llmproxy.AuditEvent, int, error)
	ProjectUsage(ctx context.Context, since time.Time) ([]store.ProjectUsage, error)
}

// Deps are the UI's collaborators.
type Deps struct {
	Service Service // required
	Reader  Reader  // required
	// VerifyManagementToken checks a sign-in (constant time; e.g. a
	// mgmtauth.Verifier). Required.
	VerifyManagementToken func(token string) bool
	// Sessions keeps the sessions in the database (default: Reader, when it
	// is a store.Store). Config.ManagementTokenDigest() names the token they
	// belong to: sessions of another token are refused.
	Sessions SessionStore
	// BasePath is where the UI lives: "" (root) or e.g. "/admin" (no
	// trailing slash). Requests arrive unstripped.
	BasePath string
	// Config is the ADMIN_UI_* configuration (zero values take defaults).
	Config config.Admin
	// TrustedProxies are believed for X-Forwarded-For (sign-in budget) and
	// X-Forwarded-Proto (Secure cookies in auto mode).
	TrustedProxies []netip.Prefix
	// Redis shares the sign-in failure budget between instances (nil: this
	// process only); its keys start with RedisKeyPrefix (REDIS_KEY_PREFIX).
	Redis          redis.UniversalClient
	RedisKeyPrefix string
	// Metrics count failed sign-ins and spent budgets (may be nil).
	Metrics *failbudget.Metrics
	// ProxyURL is the proxy's OpenAI base URL shown in the new-token usage
	// example (default: this request's origin + "/v1").
	ProxyURL string
	Log      *slog.Logger
	Clock    func() time.Time
}

type handler struct {
	svc      Service
	reader   Reader
	verify   func(string) bool
	base     string
	sessions *sessions
	limiter  *failbudget.Guard // wrong tokens per client IP and globally
	trusted  []netip.Prefix
	proxyURL string
	version  string
	log      *slog.Logger
	errs     web.Surface // the HTML error pages, each failure logged once
	clock    func() time.Time
}

// New returns the UI's handler; see the package comment for the base-path
// contract.
func New(d Deps) (http.Handler, error) {
	if d.Service == nil || d.Reader == nil || d.VerifyManagementToken == nil {
		return nil, errors.New("admin ui: Service, Reader and VerifyManagementToken are required")
	}
	base := strings.TrimRight(d.BasePath, "/")
	if base != "" && !strings.HasPrefix(base, "/") {
		return nil, fmt.Errorf("admin ui: base path %q must start with /", d.BasePath)
	}
	c := d.Config
	if c.SecureCookies == "" {
		c.SecureCookies = "auto"
	}
	if c.SessionIdle <= 0 {
		c.SessionIdle = 30 * time.Minute
	}
	if c.SessionMax <= 0 {
		c.SessionMax = 12 * time.Hour
	}
	if c.LoginAttempts <= 0 {
		c.LoginAttempts = 5
	}
	if c.LoginGlobalAttempts <= 0 {
		c.LoginGlobalAttempts = 10 * c.LoginAttempts
	}
	if c.LoginWindow <= 0 {
		c.LoginWindow = 5 * time.Minute
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Clock == nil {
		d.Clock = time.Now
	}
	key := c.SessionKeyBytes()
	if key == nil {
		key = make([]byte, 32)
		if _, err := randRead(key); err != nil {
			return nil, fmt.Errorf("admin ui: session key: %w", err)
		}
		d.Log.Info("admin ui: ADMIN_UI_SESSION_KEY is unset; session fingerprints use a random per-process key (sessions end on restart and are not shared between replicas)")
	}
	st := d.Sessions
	if st == nil {
		st, _ = d.Reader.(SessionStore)
	}
	if st == nil {
		return nil, errors.New("admin ui: Sessions is required (a store.Store as Reader provides it)")
	}
	sess, err := newSessions(st, key, c.ManagementTokenDigest(), base+"/", c.SecureCookies, d.TrustedProxies, c.SessionIdle, c.SessionMax, d.Clock)
	if err != nil {
		return nil, err
	}
	h := &handler{
		svc: d.Service, reader: d.Reader, verify: d.VerifyManagementToken, base: base,
		sessions: sess,
		limiter: failbudget.NewGuard(failbudget.Options{
			Surface: "admin_ui", PerClient: c.LoginAttempts, Global: c.LoginGlobalAttempts, Window: c.LoginWindow,
			Redis: d.Redis, KeyPrefix: d.RedisKeyPrefix, MaxClients: maxTrackedClients, Metrics: d.Metrics,
			Log: d.Log, Clock: d.Clock,
		}),
		trusted: d.TrustedProxies, proxyURL: d.ProxyURL, version: assetVersion(), log: d.Log, clock: d.Clock,
	}
	h.errs = web.Surface{Render: h.renderError, Log: d.Log}
	return h.routes(), nil
}

// routes is the UI's routing table.
func (h *handler) routes() http.Handler {
	b := h.base
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET "+b+"/static/", h.staticHandler(http.StripPrefix(b+"/static/", http.FileServerFS(static))))

	mux.HandleFunc("GET "+b+"/auth/login", h.loginForm)
	mux.HandleFunc("POST "+b+"/auth/login", h.login)
	mux.HandleFunc("GET "+b+"/auth/logout", h.logoutGet)
	mux.HandleFunc("POST "+b+"/auth/logout", h.logout)
	mux.HandleFunc("POST "+b+"/auth/logout-everywhere", h.logoutEverywhere)

	if b != "" {
		mux.HandleFunc("GET "+b, h.toDashboard)
	}
	mux.HandleFunc("GET "+b+"/{$}", h.toDashboard)
	auth := func(pattern string, fn web.HandlerFunc) {
		method, path, _ := strings.Cut(pattern, " ")
		mux.Handle(method+" "+b+path, h.errs.Handle(h.authed(fn)))
	}
	auth("GET /dashboard", h.dashboard)

	auth("GET /projects", h.projects)
	auth("GET /projects/new", h.projectNew)
	auth("POST /projects", h.projectCreate)
	auth("GET /projects/{id}", h.projectShow)
	auth("GET /projects/{id}/edit", h.projectEdit)
	auth("POST /projects/{id}", h.projectPost)
	auth("PUT /projects/{id}", h.projectPost)
	auth("PATCH /projects/{id}", h.projectPost)
	auth("DELETE /projects/{id}", h.projectPost)
	auth("POST /projects/{id}/revoke-tokens", h.projectRevokeTokens)

	auth("GET /tokens", h.tokens)
	auth("GET /tokens/new", h.tokenNew)
	auth("POST /tokens", h.tokenCreate)
	auth("GET /tokens/{id}", h.tokenShow)
	auth("GET /tokens/{id}/edit", h.tokenEdit)
	auth("POST /tokens/{id}", h.tokenPost)
	auth("PUT /tokens/{id}", h.tokenPost)
	auth("PATCH /tokens/{id}", h.tokenPost)
	auth("DELETE /tokens/{id}", h.tokenPost)

	auth("GET /audit", h.auditList)
	auth("GET /audit/{id}", h.auditShow)

	mux.HandleFunc(b+"/", h.notFound)

	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.log.WarnContext(r.Context(), "admin ui: cross-origin request refused", "method", r.Method, "path", r.URL.Path,
			"origin", r.Header.Get("Origin"), "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"))
		h.errorPage(w, r, http.StatusForbidden, "Cross-origin request refused.")
	}))
	return securityHeaders(cop.Handler(mux))
}

// securityHeaders sets the headers every response carries.
func securityHeaders(next http.Handler) http.Handler {
	const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", csp)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		hd.Set("Cross-Origin-Resource-Policy", "same-origin")
		hd.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), interest-cohort=()")
		next.ServeHTTP(w, r)
	})
}

// staticHandler serves embedded assets; versioned URLs are immutable.
func (h *handler) staticHandler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			h.notFound(w, r)
			return
		}
		if r.URL.Query().Get("v") != "" {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			w.Header().Set("Cache-Control", "public, max-age=300")
		}
		next.ServeHTTP(w, r)
	})
}

// assetVersion is a number derived from the embedded assets' content, so
// that a new build busts caches and a restart does not.
func assetVersion() string {
	hash := sha256.New()
	_ = fs.WalkDir(staticFS, "static", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := staticFS.ReadFile(path)
		if err != nil {
			return err
		}
		hash.Write([]byte(path))
		hash.Write(b)
		return nil
	})
	return strconv.FormatUint(uint64(binary.BigEndian.Uint32(hash.Sum(nil))), 10)
}

// maxFormBytes bounds form bodies.
const maxFormBytes = 64 << 10

// authed requires a session; for state changes it also requires the form
// token.
func (h *handler) authed(fn web.HandlerFunc) web.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		s, err := h.sessions.load(w, r)
		if err != nil && !errors.Is(err, errNoSession) && !errors.Is(err, errSessionExpired) {
			return llmproxy.Wrap(llmproxy.ErrUnavailable, llmproxy.CodeUnavailable, "Sessions cannot be checked right now. Try again shortly.", err)
		}
		if err != nil {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				return llmproxy.Wrap(llmproxy.ErrForbidden, llmproxy.CodeForbidden, "Your session has ended. Sign in again, then repeat the action.", err)
			}
			to := h.base + "/auth/login"
			if errors.Is(err, errSessionExpired) {
				to += "?expired=1"
			}
			http.Redirect(w, r, to, http.StatusSeeOther)
			return nil
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			if err := r.ParseForm(); err != nil {
				return llmproxy.Wrap(llmproxy.ErrInvalid, llmproxy.CodeInvalidRequest, "The form could not be read.", err)
			}
			if !validCSRF(s, r.PostForm.Get("csrf_token")) {
				// A security refusal: logged at warn as such, not as a failure.
				h.log.WarnContext(r.Context(), "admin ui: form token missing or wrong", "method", r.Method, "path", r.URL.Path)
				h.errorPage(w, r, http.StatusForbidden, "The form has expired or did not come from this site. Reload the page and try again.")
				return nil
			}
		}
		return fn(w, r.WithContext(withSession(r.Context(), s)))
	}
}

// actor is the audit actor of r.
func (h *handler) actor(r *http.Request) management.Actor {
	return h.svc.Recorder().ActorFrom(r, audit.ActorAdminUI)
}

// page returns the common page data.
func (h *handler) page(r *http.Request, title, nav string) templates.Page {
	p := templates.Page{Base: h.base, Title: title, Nav: nav, AssetVersion: h.version}
	if s, ok := sessionFrom(r.Context()); ok {
		p.CSRF, p.SignedIn = s.CSRF, true
	}
	p.Flash = flashText(r)
	return p
}

// render writes a complete page; rendering happens into a buffer first so a
// failure never leaves half a page.
func (h *handler) render(w http.ResponseWriter, r *http.Request, status int, c templ.Component) {
	var buf bytes.Buffer
	if err := c.Render(r.Context(), &buf); err != nil {
		h.log.ErrorContext(r.Context(), "admin ui: render", "path", r.URL.Path, "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (h *handler) errorPage(w http.ResponseWriter, r *http.Request, status int, msg string) {
	p := h.page(r, http.StatusText(status), "")
	p.Flash = ""
	h.render(w, r, status, templates.ErrorPage(p, status, msg))
}

// renderError is the UI's error renderer (h.errs): an error page with the
// error's client-safe message.
func (h *handler) renderError(w http.ResponseWriter, r *http.Request, status int, err error) {
	h.errorPage(w, r, status, llmproxy.ErrorMessage(err))
}

// notFound is the 404 page of a signed-in user (with the navigation, like
// every other page); signed out, it is the sign-in form.
func (h *handler) notFound(w http.ResponseWriter, r *http.Request) {
	s, err := h.sessions.load(w, r)
	if err != nil {
		http.Redirect(w, r, h.base+"/auth/login", http.StatusSeeOther)
		return
	}
	h.errorPage(w, r.WithContext(withSession(r.Context(), s)), http.StatusNotFound, "There is no such page.")
}

func (h *handler) toDashboard(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, h.base+"/dashboard", http.StatusSeeOther)
}

// redirect answers a successful form post (303: the browser follows with
// GET, so a reload does not repeat the action).
func (h *handler) redirect(w http.ResponseWriter, r *http.Request, path string, kv ...string) {
	http.Redirect(w, r, templates.Href(h.base, path, kv...), http.StatusSeeOther)
}

// flashes are the fixed messages a redirect may ask for (?done=…); nothing
// from the query string is echoed.
var flashes = map[string]string{
	"project_created":     "Project created.",
	"project_updated":     "Project updated.",
	"project_activated":   "Project activated.",
	"project_deactivated": "Project deactivated: the proxy refuses its tokens.",
	"tokens_revoked":      "All tokens of this project were revoked.",
	"token_revoked":       "Token revoked.",
	"token_updated":       "Token updated.",
	"signed_out":          "You have been signed out.",
	"signed_out_all":      "Every admin session has been signed out, on every device.",
}

func flashText(r *http.Request) string {
	msg := flashes[r.URL.Query().Get("done")]
	if n := r.URL.Query().Get("n"); msg != "" && n != "" {
		if v, err := strconv.Atoi(n); err == nil && v >= 0 {
			msg += " (" + strconv.Itoa(v) + ")"
		}
	}
	return msg
}
