package adminui

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/llm-proxy/llm-proxy/shared/web"
)

// CookieName is the name of the session cookie.
const CookieName = "llmproxy_admin_session"

// refreshAfter is how stale a session's last-seen time may get before the
// cookie is re-issued (bounds Set-Cookie traffic; idle expiry is measured
// with this granularity).
const refreshAfter = time.Minute

// session is the content of the encrypted session cookie. It holds no
// credential: the management token is checked once at sign-in and never
// stored.
type session struct {
	ID     string `json:"i"` // random; identifies the session for sign-out
	CSRF   string `json:"c"` // form token
	Issued int64  `json:"t"` // unix seconds of sign-in
	Seen   int64  `json:"s"` // unix seconds of the last request
}

// sessions seals sessions into AES-256-GCM cookies and remembers signed-out
// session ids (per instance) until their absolute expiry.
type sessions struct {
	aead    cipher.AEAD
	path    string
	secure  string // auto, true, false
	trusted []netip.Prefix
	idle    time.Duration
	max     time.Duration
	clock   func() time.Time

	mu      sync.Mutex
	revoked map[string]time.Time // id → when it would have expired anyway
}

func newSessions(key []byte, path, secure string, trusted []netip.Prefix, idle, maxAge time.Duration, clock func() time.Time) (*sessions, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("admin ui: session key must be 32 bytes, got %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("admin ui: session cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("admin ui: session cipher: %w", err)
	}
	if path == "" {
		path = "/"
	}
	return &sessions{aead: aead, path: path, secure: secure, trusted: trusted, idle: idle, max: maxAge,
		clock: clock, revoked: map[string]time.Time{}}, nil
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// seal encrypts s; the cookie name is authenticated as additional data.
func (m *sessions) seal(s session) string {
	plain, _ := json.Marshal(s)
	nonce := make([]byte, m.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(m.aead.Seal(nonce, nonce, plain, []byte(CookieName)))
}

var (
	errNoSession      = errors.New("no session")
	errSessionExpired = errors.New("session expired")
)

// open decrypts and checks a cookie value.
func (m *sessions) open(v string) (session, error) {
	raw, err := base64.RawURLEncoding.DecodeString(v)
	ns := m.aead.NonceSize()
	if err != nil || len(raw) < ns+m.aead.Overhead() {
		return session{}, errNoSession
	}
	plain, err := m.aead.Open(nil, raw[:ns], raw[ns:], []byte(CookieName))
	if err != nil {
		return session{}, errNoSession
	}
	var s session
	if err := json.Unmarshal(plain, &s); err != nil || s.ID == "" || s.CSRF == "" {
		return session{}, errNoSession
	}
	now := m.clock()
	issued, seen := time.Unix(s.Issued, 0), time.Unix(s.Seen, 0)
	if !now.Before(issued.Add(m.max)) || !now.Before(seen.Add(m.idle)) {
		return session{}, errSessionExpired
	}
	m.mu.Lock()
	_, gone := m.revoked[s.ID]
	m.mu.Unlock()
	if gone {
		return session{}, errNoSession
	}
	return s, nil
}

// load returns the request's session. A session whose last-seen time is
// stale is re-issued so that idle expiry counts from the last request.
func (m *sessions) load(w http.ResponseWriter, r *http.Request) (session, error) {
	c, err := r.Cookie(CookieName)
	if err != nil || c.Value == "" {
		return session{}, errNoSession
	}
	s, err := m.open(c.Value)
	if err != nil {
		if errors.Is(err, errSessionExpired) {
			m.clear(w, r)
		}
		return session{}, err
	}
	if now := m.clock(); now.Sub(time.Unix(s.Seen, 0)) >= refreshAfter {
		s.Seen = now.Unix()
		m.write(w, r, s)
	}
	return s, nil
}

// start begins a new session (a fresh id and form token: no fixation).
func (m *sessions) start(w http.ResponseWriter, r *http.Request) session {
	now := m.clock().Unix()
	s := session{ID: randomString(18), CSRF: randomString(32), Issued: now, Seen: now}
	m.write(w, r, s)
	return s
}

// end signs a session out: its cookie is cleared and its id refused by this
// instance until it would have expired anyway.
func (m *sessions) end(w http.ResponseWriter, r *http.Request, s session) {
	m.mu.Lock()
	now := m.clock()
	for id, until := range m.revoked {
		if now.After(until) {
			delete(m.revoked, id)
		}
	}
	m.revoked[s.ID] = time.Unix(s.Issued, 0).Add(m.max)
	m.mu.Unlock()
	m.clear(w, r)
}

func (m *sessions) write(w http.ResponseWriter, r *http.Request, s session) {
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: m.seal(s), Path: m.path,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: m.isSecure(r),
	})
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
