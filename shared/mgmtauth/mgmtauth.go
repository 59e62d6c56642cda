// Package mgmtauth guards the management API with the management token:
// `Authorization: Bearer <token>` (scheme case-insensitive), compared in
// constant time. Wrong tokens spend a failure budget per client IP and a
// global one (shared through Redis when configured; then 429 with
// Retry-After); the right token is never refused by it, and requests without
// credentials do not spend it. Denied attempts are audited.
package mgmtauth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llm-proxy/llm-proxy/shared/audit"
	"github.com/llm-proxy/llm-proxy/shared/failbudget"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/web"
)

// Verifier reports whether token is the management token. It must compare in
// constant time.
type Verifier func(token string) bool

// StaticToken verifies against a configured plaintext token. Both sides are
// HMAC'd under a random per-process key before a constant-time comparison, so
// neither content nor length leaks through timing. An empty configured token
// accepts nothing.
func StaticToken(token string) Verifier {
	var key [32]byte
	_, _ = rand.Read(key[:])
	mac := func(s string) []byte {
		h := hmac.New(sha256.New, key[:])
		h.Write([]byte(s))
		return h.Sum(nil)
	}
	want := mac(token)
	empty := token == ""
	return func(got string) bool {
		ok := hmac.Equal(mac(got), want)
		return ok && !empty && got != ""
	}
}

// SHA256Token verifies against the hex SHA-256 of the token (how llm-proxy
// serve keeps a generated management token). The comparison is constant-time
// over fixed-length digests.
func SHA256Token(hexDigest string) Verifier {
	want, err := hex.DecodeString(strings.ToLower(strings.TrimSpace(hexDigest)))
	if err != nil || len(want) != sha256.Size {
		return func(string) bool { return false }
	}
	return func(got string) bool {
		sum := sha256.Sum256([]byte(got))
		return subtle.ConstantTimeCompare(sum[:], want) == 1 && got != ""
	}
}

// Options configure an Auth.
type Options struct {
	// Recorder receives audit records of denied attempts (may be nil).
	Recorder *audit.Recorder
	// ActorName names the caller in audit records (default management_api).
	ActorName string
	// FailureLimit is how many wrong tokens one client IP may present within
	// FailureWindow before further wrong tokens get 429 (default 10 per
	// minute); GlobalFailureLimit bounds them across all clients (0: 10 ×
	// FailureLimit). The right token is never refused.
	FailureLimit       int
	GlobalFailureLimit int
	FailureWindow      time.Duration
	// Redis shares the failure budget between instances (nil: this
	// process only); its keys start with KeyPrefix (REDIS_KEY_PREFIX).
	Redis     redis.UniversalClient
	KeyPrefix string
	// Metrics count failures and spent budgets (may be nil).
	Metrics *failbudget.Metrics
	// MaxClients bounds the memory of the failure budget (default 10000 IPs).
	MaxClients int
	Clock      func() time.Time
	Log        *slog.Logger
}

// Auth checks management credentials.
type Auth struct {
	verify Verifier
	o      Options
	budget *failbudget.Guard
}

// New returns an Auth that accepts tokens for which verify returns true.
func New(verify Verifier, o Options) *Auth {
	if o.ActorName == "" {
		o.ActorName = audit.ActorManagementAPI
	}
	if o.FailureLimit <= 0 {
		o.FailureLimit = 10
	}
	if o.GlobalFailureLimit <= 0 {
		o.GlobalFailureLimit = 10 * o.FailureLimit
	}
	if o.FailureWindow <= 0 {
		o.FailureWindow = time.Minute
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Auth{verify: verify, o: o, budget: failbudget.NewGuard(failbudget.Options{
		Surface: "management_api", PerClient: o.FailureLimit, Global: o.GlobalFailureLimit, Window: o.FailureWindow,
		Redis: o.Redis, KeyPrefix: o.KeyPrefix, MaxClients: o.MaxClients, Metrics: o.Metrics, Log: o.Log, Clock: o.Clock,
	})}
}

// Error messages (the original's for 401).
const (
	msgMissing = "missing or invalid Authorization header"
	msgInvalid = "invalid management token"
	msgBlocked = "too many failed authentication attempts; retry later"
)

// Wrap requires a valid management token before next runs.
func (a *Auth) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := web.BearerToken(r.Header.Get("Authorization"))
		var err error
		if !ok {
			err = a.Check(r, "", false)
		} else {
			err = a.Check(r, token, true)
		}
		if err != nil {
			writeDenied(w, r, a.o.Log, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// RetryAfterError is returned when a client's failure budget is spent.
type RetryAfterError struct {
	Err        *llmproxy.Error
	RetryAfter time.Duration
}

func (e *RetryAfterError) Error() string { return e.Err.Error() }

// Unwrap exposes the *llmproxy.Error (kind ErrRateLimited).
func (e *RetryAfterError) Unwrap() error { return e.Err }

// Check verifies token for the client of r; present=false means no usable
// credentials were sent. It returns nil, an unauthorized *llmproxy.Error, or
// a *RetryAfterError. The right token is accepted whatever the failure
// budget says; a request without credentials is refused without counting
// against it (a browser made to send requests by another site carries
// none), so only wrong tokens spend it, and one that does answers 429 and is
// audited once per window instead of once per attempt.
func (a *Auth) Check(r *http.Request, token string, present bool) error {
	if present && a.verify(token) {
		return nil
	}
	actor := a.o.Recorder.ActorFrom(r, a.o.ActorName)
	if !present {
		a.audit(r.Context(), actor, msgMissing, nil)
		return llmproxy.E(llmproxy.ErrUnauthorized, llmproxy.CodeUnauthorized, msgMissing)
	}
	v := a.budget.Failed(r.Context(), actor.ClientIP)
	if v.Blocked {
		if v.First {
			a.audit(r.Context(), actor, msgBlocked, map[string]any{"scope": v.Scope, "failure_limit": a.o.FailureLimit,
				"global_failure_limit": a.o.GlobalFailureLimit, "window_seconds": int(a.o.FailureWindow / time.Second)})
		}
		return &RetryAfterError{
			Err:        llmproxy.E(llmproxy.ErrRateLimited, llmproxy.CodeRateLimitExceeded, msgBlocked),
			RetryAfter: v.RetryAfter,
		}
	}
	a.audit(r.Context(), actor, msgInvalid, map[string]any{"failures_in_window": v.Failures})
	return llmproxy.E(llmproxy.ErrUnauthorized, llmproxy.CodeUnauthorized, msgInvalid)
}

func (a *Auth) audit(ctx context.Context, actor audit.Actor, reason string, details map[string]any) {
	rec := a.o.Recorder
	if !rec.Enabled() {
		return
	}
	e := rec.Event(actor, "management.auth", llmproxy.OutcomeDenied, details)
	e.Reason = reason
	_ = rec.RecordDenial(context.WithoutCancel(ctx), e)
}

func writeDenied(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	if ra, ok := err.(*RetryAfterError); ok {
		secs := int((ra.RetryAfter + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
		web.WriteError(w, r, log, ra.Err)
		return
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="llm-proxy management"`)
	web.WriteError(w, r, log, err)
}
