package config

import (
	"errors"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// Server configures the HTTP listener and its lifecycle.
type Server struct {
	// ListenAddr is empty when LISTEN_ADDR is unset: serve then listens on
	// DefaultListenAddr, a function on :$PORT (see ServeAddr and
	// process.FunctionAddr).
	ListenAddr string `env:"LISTEN_ADDR" desc:"Address to listen on, e.g. 127.0.0.1:8080 (make run) or :8080 (every interface). Unset: :8080 for llm-proxy serve, :$PORT for a deployable function."`
	Port       string `env:"PORT" desc:"Port a deployable function listens on when LISTEN_ADDR is unset (set by Knative and OpenFaaS; default 8080)."`
	// ShutdownGrace bounds how long in-flight requests (streams included) may
	// take to finish after SIGTERM.
	ShutdownGrace     time.Duration `env:"SHUTDOWN_GRACE_PERIOD, default=30s" desc:"How long in-flight requests, streams included, may run after SIGTERM before the server closes them."`
	ReadHeaderTimeout time.Duration `env:"READ_HEADER_TIMEOUT, default=10s" desc:"Maximum time to read request headers."`
	IdleTimeout       time.Duration `env:"IDLE_TIMEOUT, default=120s" desc:"Keep-alive idle timeout for client connections."`
	ManagementToken   string        `env:"MANAGEMENT_TOKEN" desc:"Bearer token for the management API and the admin UI: at least 32 characters, not visibly weak (e.g. openssl rand -base64 32), else the start is refused. llm-proxy serve generates one when unset and prints it once."`
	TrustedProxies    string        `env:"TRUSTED_PROXIES" desc:"Comma-separated CIDRs of reverse proxies whose X-Forwarded-For is trusted for the client IP (empty: use the connection's address)."`
	DataDir           string        `env:"DATA_DIR, default=./data" desc:"Directory for llm-proxy serve's generated files (key file, management token hash)."`
	// PublicBaseURL is where clients reach the proxy (its /v1), when that is
	// not the host the admin UI is served from (see OpenAIBaseURL).
	PublicBaseURL string `env:"PUBLIC_BASE_URL" desc:"Public URL of the proxy, e.g. https://llm.example.com (absolute http or https; no query, fragment or user info): the admin UI's new-token usage example and the Use it line of llm-proxy manage token generate (read from the CLI's environment) show it + /v1. Unset: the admin UI's own origin, the CLI's management API origin."`
}

// OpenAIBaseURL is PublicBaseURL + "/v1" (a trailing slash of PublicBaseURL
// dropped), or "" when PUBLIC_BASE_URL is unset.
func (s Server) OpenAIBaseURL() string {
	if s.PublicBaseURL == "" {
		return ""
	}
	return strings.TrimRight(s.PublicBaseURL, "/") + "/v1"
}

// DefaultListenAddr is where llm-proxy serve listens when LISTEN_ADDR is
// unset: every interface, as a container needs.
const DefaultListenAddr = ":8080"

// ServeAddr is the address llm-proxy serve listens on: LISTEN_ADDR, or
// DefaultListenAddr when it is unset.
func (s Server) ServeAddr() string {
	if s.ListenAddr != "" {
		return s.ListenAddr
	}
	return DefaultListenAddr
}

// TrustedProxyPrefixes parses TrustedProxies (validated at load).
func (s Server) TrustedProxyPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, f := range strings.Split(s.TrustedProxies, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			a, err2 := netip.ParseAddr(f)
			if err2 != nil {
				continue
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p)
	}
	return out
}

func (s Server) validate() error {
	for _, f := range strings.Split(s.TrustedProxies, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if _, err := netip.ParsePrefix(f); err != nil {
			if _, err := netip.ParseAddr(f); err != nil {
				return invalid("TRUSTED_PROXIES", "must be comma-separated CIDRs or IP addresses", f)
			}
		}
	}
	if err := checkPublicBaseURL(s.PublicBaseURL); err != nil {
		return err
	}
	if err := checkManagementToken(s.ManagementToken); err != nil {
		return err
	}
	if s.ShutdownGrace < 0 {
		return invalid("SHUTDOWN_GRACE_PERIOD", "must not be negative", s.ShutdownGrace)
	}
	return nil
}

// checkPublicBaseURL accepts "" or an absolute http(s) URL with a host and
// neither query, fragment nor user info.
func checkPublicBaseURL(v string) error {
	if v == "" {
		return nil
	}
	u, err := url.Parse(v)
	switch {
	case err != nil, u.Scheme != "http" && u.Scheme != "https", u.Host == "", u.Opaque != "":
		return invalid("PUBLIC_BASE_URL", "must be an absolute http:// or https:// URL, e.g. https://llm.example.com", v)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(v, "#"):
		return invalid("PUBLIC_BASE_URL", "must not have a query or fragment", v)
	case u.User != nil:
		return invalid("PUBLIC_BASE_URL", "must not carry user info", v)
	}
	return nil
}

// Log configures log/slog output.
type Log struct {
	Level  string `env:"LOG_LEVEL, default=info" desc:"debug, info, warn or error."`
	Format string `env:"LOG_FORMAT, default=json" desc:"json or text."`
	// FlushInterval batches log writes: one write(2) per interval instead of
	// one per access-log line.
	FlushInterval time.Duration `env:"LOG_FLUSH_INTERVAL, default=100ms" desc:"Longest time a log line waits in memory before it is written (lines are written in batches, one write per interval; warnings and errors at once, and everything at shutdown). 0 writes every line at once. At most 10s."`
}

func (l Log) validate() error {
	if err := oneOf("LOG_LEVEL", l.Level, "debug", "info", "warn", "error"); err != nil {
		return err
	}
	if l.FlushInterval < 0 || l.FlushInterval > 10*time.Second {
		return invalid("LOG_FLUSH_INTERVAL", "must be between 0 and 10s", l.FlushInterval)
	}
	return oneOf("LOG_FORMAT", l.Format, "json", "text")
}

// ErrNoManagementToken stops the functions that authenticate management
// requests when MANAGEMENT_TOKEN is unset.
var ErrNoManagementToken = errors.New("MANAGEMENT_TOKEN is required (e.g. openssl rand -base64 32, the same for every function)")

// RequireManagementToken returns ErrNoManagementToken when MANAGEMENT_TOKEN
// is unset (llm-proxy serve generates one instead; the functions cannot).
func (s Server) RequireManagementToken() error {
	if s.ManagementToken == "" {
		return ErrNoManagementToken
	}
	return nil
}
