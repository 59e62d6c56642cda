package config

import (
	"encoding/base64"
	"encoding/hex"
	"strings"
	"time"
)

// Admin configures the admin web UI.
type Admin struct {
	Enabled bool `env:"ADMIN_UI_ENABLED, default=true" desc:"Serve the admin web UI (llm-proxy serve mounts it under ADMIN_UI_PATH)."`
	// Path is ADMIN_UI_PATH as set (empty when unset); ServePath and
	// FunctionPath resolve it for the two shapes.
	Path string `env:"ADMIN_UI_PATH" desc:"Base path of the admin UI, e.g. /admin, or / for the root. Unset or empty: /admin in llm-proxy serve, the root in the stand-alone admin-ui function."`
	// SecureCookies: auto sets Secure when the request arrived over TLS (or
	// X-Forwarded-Proto https from a trusted proxy).
	SecureCookies string `env:"ADMIN_UI_SECURE_COOKIES, default=auto" desc:"Secure attribute of the admin session cookie: auto (when served over HTTPS, directly or via X-Forwarded-Proto from TRUSTED_PROXIES), true or false."`
	// SessionKey keys the token fingerprints of session records (sessions
	// are database records; the cookie carries only a random id).
	SessionKey string `env:"ADMIN_UI_SESSION_KEY" desc:"32-byte key (hex or base64) that keys the fingerprint of the management token kept in each admin session record. Empty: derived from ENCRYPTION_KEY, the same on every replica."`
	// SessionIdle and SessionMax bound a session's life.
	SessionIdle time.Duration `env:"ADMIN_UI_SESSION_IDLE_TIMEOUT, default=30m" desc:"An admin session ends after this long without a request (enforced on its database record, on every instance)."`
	SessionMax  time.Duration `env:"ADMIN_UI_SESSION_MAX_AGE, default=12h" desc:"An admin session ends this long after sign-in, whatever the activity (enforced on its database record)."`
	// LoginAttempts failed sign-ins per client IP within LoginWindow.
	LoginAttempts int           `env:"ADMIN_UI_LOGIN_ATTEMPTS, default=5" desc:"Wrong management tokens allowed at the admin sign-in per client IP within ADMIN_UI_LOGIN_WINDOW before further wrong ones are refused (the right token is always accepted; an empty form is not counted)."`
	LoginWindow   time.Duration `env:"ADMIN_UI_LOGIN_WINDOW, default=5m" desc:"Window of the admin sign-in failure budget."`
	// LoginGlobalAttempts failed sign-ins from all clients together (every
	// instance, with Redis) within LoginWindow.
	LoginGlobalAttempts int `env:"ADMIN_UI_LOGIN_GLOBAL_ATTEMPTS, default=50" desc:"Wrong management tokens allowed at the admin sign-in from all clients together (across instances when REDIS_ADDR is set) within ADMIN_UI_LOGIN_WINDOW before further wrong ones are refused; the right token is always accepted."`

	// managementTokenDigest is the hex SHA-256 of MANAGEMENT_TOKEN (set by
	// Load; see ManagementTokenDigest).
	managementTokenDigest string
}

// DefaultAdminPath is the admin UI's base path in llm-proxy serve when
// ADMIN_UI_PATH is unset.
const DefaultAdminPath = "/admin"

// reservedPaths are served by llm-proxy serve itself; the admin UI's base
// path must not be one of them or lie under one.
var reservedPaths = []string{"/v1", "/manage", "/metrics", "/health", "/healthz", "/ready", "/live", "/_"}

// ServePath is the UI's base path in llm-proxy serve, without a trailing
// slash: "" for the root (ADMIN_UI_PATH=/), DefaultAdminPath when unset.
func (x Admin) ServePath() string {
	if x.Path == "" {
		return DefaultAdminPath
	}
	return strings.TrimRight(x.Path, "/")
}

// FunctionPath is the UI's base path in the stand-alone admin-ui function:
// the root ("") unless ADMIN_UI_PATH names another.
func (x Admin) FunctionPath() string { return strings.TrimRight(x.Path, "/") }

// SessionKeyBytes decodes SessionKey (validated at load); nil when unset.
func (x Admin) SessionKeyBytes() []byte {
	k, _ := decodeKey32(x.SessionKey)
	return k
}

func decodeKey32(s string) ([]byte, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, true
	}
	if b, err := hex.DecodeString(s); err == nil && len(b) == 32 {
		return b, true
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == 32 {
			return b, true
		}
	}
	return nil, false
}

func (x Admin) validate() error {
	if err := validAdminPath(x.Path); err != nil {
		return err
	}
	if err := oneOf("ADMIN_UI_SECURE_COOKIES", x.SecureCookies, "auto", "true", "false"); err != nil {
		return err
	}
	if _, ok := decodeKey32(x.SessionKey); !ok {
		return invalid("ADMIN_UI_SESSION_KEY", "must be 32 bytes, hex (64 characters) or base64", "<redacted>")
	}
	if x.SessionIdle < time.Minute {
		return invalid("ADMIN_UI_SESSION_IDLE_TIMEOUT", "must be at least 1m", x.SessionIdle)
	}
	if x.SessionMax < x.SessionIdle {
		return invalid("ADMIN_UI_SESSION_MAX_AGE", "must be at least ADMIN_UI_SESSION_IDLE_TIMEOUT", x.SessionMax)
	}
	if x.LoginAttempts < 1 {
		return invalid("ADMIN_UI_LOGIN_ATTEMPTS", "must be at least 1", x.LoginAttempts)
	}
	if x.LoginGlobalAttempts < x.LoginAttempts {
		return invalid("ADMIN_UI_LOGIN_GLOBAL_ATTEMPTS", "must be at least ADMIN_UI_LOGIN_ATTEMPTS", x.LoginGlobalAttempts)
	}
	if x.LoginWindow < time.Second {
		return invalid("ADMIN_UI_LOGIN_WINDOW", "must be at least 1s", x.LoginWindow)
	}
	return nil
}

// validAdminPath accepts "", "/" and paths such as /admin or /ops/admin.
func validAdminPath(p string) error {
	if p == "" || p == "/" {
		return nil
	}
	if !strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.Contains(p, "//") || strings.ContainsAny(p, " ?#{}%\\") {
		return invalid("ADMIN_UI_PATH", "must be / (the root) or a path that starts and does not end with / (e.g. /admin)", p)
	}
	for _, r := range reservedPaths {
		if p == r || strings.HasPrefix(p, r+"/") {
			return invalid("ADMIN_UI_PATH", "must not be "+r+" or lie under it: llm-proxy serve answers "+strings.Join(reservedPaths, ", ")+" itself", p)
		}
	}
	return nil
}
