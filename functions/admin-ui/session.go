package adminui

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/store"
	"github.com/llm-proxy/llm-proxy/shared/web"
)

// CookieName is the name of the session cookie.
const CookieName = "llmproxy_admin_session"

// refreshAfter is how stale a session's last-seen time may get before it is
// written again (bounds database writes; idle expiry is measured with this
// granularity).
const refreshAfter = time.Minute

// SessionStore keeps the sessions (store.Store satisfies it): a session is
// a database record, so signing out ends it on every instance at once and a
// restart does not revive it.
type SessionStore = store.AdminSessions

// session is a signed-in session. It holds no credential: the management
// token is checked once at sign-in and only a keyed fingerprint of it is
// kept.
type session struct {
	idHash string // hex SHA-256 of the cookie's id
	CSRF   string // form token
}

// sessions keeps sessions in a SessionStore; the cookie carries only a
// random 256-bit id.
type sessions struct {
	st          SessionStore
	key         []byte // HMAC key of token fingerprints
	fingerprint string // of the configured management token ("" when unknown)
	path        string
	secure      string // auto, true, false
	trusted     []netip.Prefix
	idle        time.Duration
	max         time.Duration
	clock       func() time.Time
}

func newSessions(st SessionStore, key []byte, tokenDigest, path, secure string, trusted []netip.Prefix, idle, maxAge time.Duration, clock func() time.Time) (*sessions, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("admin ui: session key must be 32 bytes, got %d", len(key))
	}
	if path == "" {
		path = "/"
	}
	m := &sessions{st: st, key: key, path: path, secure: secure, trusted: trusted, idle: idle, max: maxAge, clock: clock}
	if tokenDigest != "" {
		m.fingerprint = m.fingerprintOf(tokenDigest)
	}
	return m, nil
}

// fingerprintOf is the keyed fingerprint of a management token given as its
// hex SHA-256 (so that it can be computed from a typed token and from
// llm-proxy serve's stored digest alike).
func (m *sessions) fingerprintOf(tokenDigest string) string {
	h := hmac.New(sha256.New, m.key)
	h.Write([]byte("llm-proxy admin session token\x00"))
	h.Write([]byte(strings.ToLower(tokenDigest)))
	return hex.EncodeToString(h.Sum(nil))
}

// TokenDigest is the hex SHA-256 of a management token.
func TokenDigest(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashID(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

var (
	errNoSession      = errors.New("no session")
	errSessionExpired = errors.New("session expired")
)

// load returns the request's session: a record that exists, was opened with
// the configured management token and has neither idled out nor passed its
// absolute age. An ended session's record is deleted. The last-seen time is
// written at most once per refreshAfter.
func (m *sessions) load(w http.ResponseWriter, r *http.Request) (session, error) {
	c, err := r.Cookie(CookieName)
	if err != nil || c.Value == "" || len(c.Value) > 100 {
		return session{}, errNoSession
	}
	id := hashID(c.Value)
	rec, err := m.st.GetAdminSession(r.Context(), id)
	if errors.Is(err, llmproxy.ErrNotFound) {
		m.clear(w, r)
		return session{}, errNoSession
	}
	if err != nil {
		return session{}, err
	}
	now := m.clock()
	stale := m.fingerprint != "" && !hmac.Equal([]byte(rec.TokenFingerprint), []byte(m.fingerprint))
	if stale || !now.Before(rec.CreatedAt.Add(m.max)) || !now.Before(rec.LastSeenAt.Add(m.idle)) {
		_ = m.st.DeleteAdminSession(context.WithoutCancel(r.Context()), id)
		m.clear(w, r)
		return session{}, errSessionExpired
	}
	if now.Sub(rec.LastSeenAt) >= refreshAfter {
		if err := m.st.TouchAdminSession(r.Context(), id, now); errors.Is(err, llmproxy.ErrNotFound) {
			m.clear(w, r)
			return session{}, errNoSession
		}
	}
	return session{idHash: id, CSRF: rec.CSRF}, nil
}

// start begins a new session (a fresh id and form token: no fixation) for
// the management token whose digest is tokenDigest, and ends the sessions
// of other tokens and the expired ones.
func (m *sessions) start(w http.ResponseWriter, r *http.Request, tokenDigest string) (session, error) {
	now := m.clock()
	id := randomString(32)
	fp := m.fingerprintOf(tokenDigest)
	rec := store.AdminSession{IDHash: hashID(id), CSRF: randomString(32), TokenFingerprint: fp, CreatedAt: now, LastSeenAt: now}
	if err := m.st.CreateAdminSession(r.Context(), rec); err != nil {
		return session{}, fmt.Errorf("admin ui: start session: %w", err)
	}
	_, _ = m.st.DeleteAdminSessions(r.Context(), store.AdminSessionPurge{
		KeepFingerprint: fp, CreatedBefore: now.Add(-m.max), SeenBefore: now.Add(-m.idle),
	})
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: id, Path: m.path, MaxAge: int(m.max / time.Second),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: m.isSecure(r),
	})
	return session{idHash: rec.IDHash, CSRF: rec.CSRF}, nil
}

// end signs a session out: its record is deleted (every instance refuses
// it at once) and its cookie cleared.
func (m *sessions) end(w http.ResponseWriter, r *http.Request, s session) error {
	m.clear(w, r)
	return m.st.DeleteAdminSession(context.WithoutCancel(r.Context()), s.idHash)
}

// endAll signs every session out, on every device and instance.
func (m *sessions) endAll(w http.ResponseWriter, r *http.Request) (int, error) {
	m.clear(w, r)
	return m.st.DeleteAdminSessions(context.WithoutCancel(r.Context()), store.AdminSessionPurge{All: true})
}

func (m *sessions) clear(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: "", Path: m.path, MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: m.isSecure(r),
	})
}

// isSecure decides the cookie's Secure attribute (ADMIN_UI_SECURE_COOKIES).
func (m *sessions) isSecure(r *http.Request) bool {
	switch m.secure {
	case "true":
		return true
	case "false":
		return false
	}
	return isHTTPS(r, m.trusted)
}

// isHTTPS reports whether the client reached us over HTTPS: directly, or
// through a trusted proxy that says so in X-Forwarded-Proto.
func isHTTPS(r *http.Request, trusted []netip.Prefix) bool {
	if r.TLS != nil {
		return true
	}
	proto := strings.TrimSpace(strings.Split(r.Header.Get("X-Forwarded-Proto"), ",")[0])
	if !strings.EqualFold(proto, "https") {
		return false
	}
	// ClientIP only looks past the peer when the peer is trusted; compare
	// with the raw peer to find out whether it is.
	peer := r.RemoteAddr
	if i := strings.LastIndexByte(peer, ':'); i >= 0 {
		peer = peer[:i]
	}
	a, err := netip.ParseAddr(strings.Trim(peer, "[]"))
	if err != nil {
		return false
	}
	for _, p := range trusted {
		if p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

// validCSRF compares a submitted form token with the session's in constant
// time.
func validCSRF(s session, got string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(s.CSRF), []byte(got)) == 1
}

type ctxKey struct{}

func withSession(ctx context.Context, s session) context.Context {
	return context.WithValue(ctx, ctxKey{}, s)
}

func sessionFrom(ctx context.Context) (session, bool) {
	s, ok := ctx.Value(ctxKey{}).(session)
	return s, ok
}

// clientIP is the request's client address for the sign-in budget.
func clientIP(r *http.Request, trusted []netip.Prefix) string {
	return web.ClientIP(r, trusted)
}
