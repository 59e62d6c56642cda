package adminui

import (
	"crypto/rand"
	"net/http"
	"strconv"
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
	token := r.PostForm.Get("management_token")
	if token == "" {
		// Not a guess: it spends no budget (another site can make a
		// browser post this form, but not with the token).
		h.audit(r, actor, llmproxy.OutcomeFailure, "missing management token", nil)
		p.Error = "Management token is required."
		h.render(w, r, http.StatusBadRequest, templates.Login(p))
		return
	}
	if !h.verify(token) {
		// The right token is never refused; wrong ones spend the budgets.
		v := h.limiter.Failed(r.Context(), clientIP(r, h.trusted))
		if v.Blocked {
			if v.First {
				h.audit(r, actor, llmproxy.OutcomeDenied, "too many failed sign-in attempts", map[string]any{"scope": v.Scope})
			}
			w.Header().Set("Retry-After", strconv.Itoa(max(int((v.RetryAfter+time.Second-1)/time.Second), 1)))
			p.Error = "Too many failed sign-in attempts. Try again in " + humanWait(v.RetryAfter) + "."
			h.render(w, r, http.StatusTooManyRequests, templates.Login(p))
			return
		}
		h.audit(r, actor, llmproxy.OutcomeFailure, "invalid management token", map[string]any{"failures_in_window": v.Failures})
		p.Error = "Invalid management token. Please check and try again."
		h.render(w, r, http.StatusUnauthorized, templates.Login(p))
		return
	}
	if _, err := h.sessions.start(w, r, TokenDigest(token)); err != nil {
		h.log.ErrorContext(r.Context(), "admin ui: sign-in", "error", err)
		p.Error = "The session could not be started. Try again shortly."
		h.render(w, r, http.StatusServiceUnavailable, templates.Login(p))
		return
	}
	h.audit(r, actor, llmproxy.OutcomeSuccess, "", nil)
	h.toDashboard(w, r)
}

// signOutForm returns the session of a sign-out form post (POST with the
// form token); false when it has answered (no session: to the sign-in page;
// a missing or wrong form token: 403).
func (h *handler) signOutForm(w http.ResponseWriter, r *http.Request) (session, bool) {
	s, err := h.sessions.load(w, r)
	if err != nil {
		h.redirect(w, r, "/auth/login")
		return session{}, false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBytes)
	if err := r.ParseForm(); err != nil || !validCSRF(s, r.PostForm.Get("csrf_token")) {
		h.errorPage(w, r, http.StatusForbidden, "The form has expired or did not come from this site. Reload the page and try again.")
		return session{}, false
	}
	return s, true
}

// logout ends the session (POST with the form token).
func (h *handler) logout(w http.ResponseWriter, r *http.Request) {
	if s, ok := h.signOutForm(w, r); ok {
		h.endSession(w, r, s)
	}
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
	if err := h.sessions.end(w, r, s); err != nil {
		h.errorPage(w, r, http.StatusServiceUnavailable, "The session could not be ended. Try again shortly.")
		return
	}
	h.audit(r, h.svc.Recorder().ActorFrom(r, audit.ActorAdminUI), llmproxy.OutcomeSuccess, "", nil)
	h.redirect(w, r, "/auth/login", "done", "signed_out")
}

// logoutEverywhere ends every admin session, on every device and instance
// (POST with the form token).
func (h *handler) logoutEverywhere(w http.ResponseWriter, r *http.Request) {
	if _, ok := h.signOutForm(w, r); !ok {
		return
	}
	n, err := h.sessions.endAll(w, r)
	if err != nil {
		h.errorPage(w, r, http.StatusServiceUnavailable, "The sessions could not be ended. Try again shortly.")
		return
	}
	h.audit(r, h.svc.Recorder().ActorFrom(r, audit.ActorAdminUI), llmproxy.OutcomeSuccess, "", map[string]any{"everywhere": true, "sessions_ended": n})
	h.redirect(w, r, "/auth/login", "done", "signed_out_all")
}

// audit records a sign-in or sign-out; failures to record are logged by the
// recorder and do not block the user. Failed sign-ins are aggregated
// (RecordDenial): a client repeating one writes a record and a summary per
// window, not a record per attempt (empty forms spend no budget).
func (h *handler) audit(r *http.Request, actor audit.Actor, outcome, reason string, details map[string]any) {
	rec := h.svc.Recorder()
	action := ActionLogin
	if r.URL.Path == h.base+"/auth/logout" || r.URL.Path == h.base+"/auth/logout-everywhere" {
		action = ActionLogout
	}
	e := rec.Event(actor, action, outcome, details)
	e.Reason = reason
	if outcome != llmproxy.OutcomeSuccess {
		_ = rec.RecordDenial(r.Context(), e)
		return
	}
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
