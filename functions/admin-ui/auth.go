package adminui

import (
	"crypto/rand"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/llm-proxy/llm-proxy/shared/audit"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/templates"
)

// Audit actions of the sign-in flow (the original's names).
const (
	ActionLogin  = "admin.login"
	ActionLogout = "admin.logout"
)

var randRead = rand.Read

// maxLoginBytes bounds the sign-in form.
const maxLoginBytes = 8 << 10

func (h *handler) loginPage(r *http.Request) templates.Page {
	p := h.page(r, "Sign In", "")
	p.SignedIn, p.CSRF = false, ""
	return p
}

func (h *handler) loginForm(w http.ResponseWriter, r *http.Request) {
	if _, err := h.sessions.load(w, r); err == nil {
		h.toDashboard(w, r)
		return
	}
	p := h.loginPage(r)
	if r.URL.Query().Get("expired") != "" {
		p.Error = "Your session has expired. Please sign in again."
	}
	h.render(w, r, http.StatusOK, templates.Login(p))
}

// login checks the management token. The token is compared by the verifier
// (constant time), never logged, never echoed back, never stored.
func (h *handler) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBytes)
	p := h.loginPage(r)
	if err := r.ParseForm(); err != nil {
		p.Error = "The form could not be read."
		h.render(w, r, http.StatusBadRequest, templates.Login(p))
		return
	}
	rec := h.svc.Recorder()
	actor := rec.ActorFrom(r, audit.ActorAdminUI)
	ip := clientIP(r, h.trusted)
	if wait, first := h.limiter.blocked(ip); wait > 0 {
		if first {
			h.audit(r, actor, llmproxy.OutcomeDenied, "too many failed sign-in attempts", nil)
		}
		w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
		p.Error = "Too many failed sign-in attempts. Try again in " + humanWait(wait) + "."
		h.render(w, r, http.StatusTooManyRequests, templates.Login(p))
		return
	}
	token := r.PostForm.Get("management_token")
	if token == "" {
		h.limiter.failed(ip)
		h.audit(r, actor, llmproxy.OutcomeFailure, "missing management token", nil)
		p.Error = "Management token is required."
		h.render(w, r, http.StatusBadRequest, templates.Login(p))
		return
	}
	if !h.verify(token) {
		n := h.limiter.failed(ip)
		h.audit(r, actor, llmproxy.OutcomeFailure, "invalid management token", map[string]any{"failures_in_window": n})
		p.Error = "Invalid management token. Please check and try again."
		h.render(w, r, http.StatusUnauthorized, templates.Login(p))
		return
	}
	h.limiter.succeeded(ip)
	h.sessions.start(w, r)
	h.audit(r, actor, llmproxy.OutcomeSuccess, "", nil)
	h.toDashboard(w, r)
}

// logout ends the session (POST with the form token).
func (h *handler) logout(w http.ResponseWriter, r *http.Request) {
	s, err := h.sessions.load(w, r)
	if err != nil {
		h.redirect(w, r, "/auth/login")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBytes)
	if err := r.ParseForm(); err != nil || !validCSRF(s, r.PostForm.Get("csrf_token")) {
		h.errorPage(w, r, http.StatusForbidden, "The form has expired or did not come from this site. Reload the page and try again.")
		return
	}
	h.endSession(w, r, s)
}

// logoutGet signs out on a same-origin navigation (the original's GET
// /auth/logout); a request from elsewhere gets a sign-out button instead,
// so another site cannot sign the user out.
func (h *handler) logoutGet(w http.ResponseWriter, r *http.Request) {
	s, err := h.sessions.load(w, r)
	if err != nil {
		h.redirect(w, r, "/auth/login")
		return
	}
	sameOrigin := false
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin", "none":
		sameOrigin = true
	case "":
		sameOrigin = r.Header.Get("Referer") == "" || sameOriginReferer(r)
	}
	if sameOrigin {
		h.endSession(w, r, s)
		return
	}
	r = r.WithContext(withSession(r.Context(), s))
	h.render(w, r, http.StatusOK, templates.Confirm(h.page(r, "Sign Out", ""), templates.ConfirmData{
		Heading: "Sign Out", Message: "Do you want to sign out?", Action: "/auth/logout",
		Button: "Sign Out", CancelPath: "/dashboard",
	}))
}

func sameOriginReferer(r *http.Request) bool {
	ref := r.Header.Get("Referer")
	for _, scheme := range []string{"http://", "https://"} {
		prefix := scheme + r.Host + "/"
		if len(ref) >= len(prefix) && ref[:len(prefix)] == prefix {
			return true
		}
	}
	return false
}

func (h *handler) endSession(w http.ResponseWriter, r *http.Request, s session) {
	h.sessions.end(w, r, s)
	h.audit(r, h.svc.Recorder().ActorFrom(r, audit.ActorAdminUI), llmproxy.OutcomeSuccess, "", nil)
	h.redirect(w, r, "/auth/login", "done", "signed_out")
}

// audit records a sign-in or sign-out; failures to record are logged by the
// recorder and do not block the user.
func (h *handler) audit(r *http.Request, actor audit.Actor, outcome, reason string, details map[string]any) {
	rec := h.svc.Recorder()
	action := ActionLogin
	if r.URL.Path == h.base+"/auth/logout" {
		action = ActionLogout
	}
	e := rec.Event(actor, action, outcome, details)
	e.Reason = reason
	_ = rec.Record(r.Context(), e)
}

func humanWait(d time.Duration) string {
	if d < time.Minute {
		return strconv.Itoa(int((d+time.Second-1)/time.Second)) + " seconds"
	}
	m := int((d + time.Minute - 1) / time.Minute)
	if m == 1 {
		return "1 minute"
	}
	return strconv.Itoa(m) + " minutes"
}

// limiter is the per-client-IP budget of failed sign-ins within a fixed
// window starting at the first failure; memory is bounded.
type limiter struct {
	limit  int
	window time.Duration
	clock  func() time.Time

	mu      sync.Mutex
	clients map[string]*attempts
}

type attempts struct {
	failures int
	start    time.Time
	audited  bool
}

const maxTrackedClients = 10000

func newLimiter(limit int, window time.Duration, clock func() time.Time) *limiter {
	return &limiter{limit: limit, window: window, clock: clock, clients: map[string]*attempts{}}
}

// blocked returns how long ip must wait and whether this is the first
// refusal of the block (audited once, so a flood does not flood the trail).
func (l *limiter) blocked(ip string) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.clients[ip]
	if a == nil {
		return 0, false
	}
	now := l.clock()
	end := a.start.Add(l.window)
	if !now.Before(end) {
		delete(l.clients, ip)
		return 0, false
	}
	if a.failures < l.limit {
		return 0, false
	}
	first := !a.audited
	a.audited = true
	return end.Sub(now), first
}

func (l *limiter) failed(ip string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock()
	a := l.clients[ip]
	if a == nil || !now.Before(a.start.Add(l.window)) {
		if len(l.clients) >= maxTrackedClients {
			for k, v := range l.clients {
				if !now.Before(v.start.Add(l.window)) || len(l.clients) >= maxTrackedClients {
					delete(l.clients, k)
				}
			}
		}
		a = &attempts{start: now}
		l.clients[ip] = a
	}
	a.failures++
	return a.failures
}

func (l *limiter) succeeded(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.clients, ip)
}
