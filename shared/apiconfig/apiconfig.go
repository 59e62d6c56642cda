// Package apiconfig reads the upstream API provider file: which upstream the
// proxy forwards to, which paths and methods pass, which parameter values are
// allowed, which browser origins may call, and how the upstream connection
// is tuned.
//
// The file is compatible with the original's `apis:` schema (default_api,
// base_url, allowed_endpoints, allowed_methods, timeouts, connection,
// param_whitelist, allowed_origins, required_headers) and adds
// cache_endpoints, the POST endpoints whose responses the operator allows to
// be cached. Unlike the original, it is validated strictly (unknown keys,
// bad URLs, bad globs and unknown methods stop the start), endpoints match by
// whole path segments, and a path in base_url is kept (Azure OpenAI, vLLM).
package apiconfig

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// File is the YAML document.
type File struct {
	DefaultAPI string          `yaml:"default_api"`
	APIs       map[string]*API `yaml:"apis"`
}

// API is one provider entry of the file.
type API struct {
	BaseURL          string              `yaml:"base_url"`
	AllowedEndpoints []string            `yaml:"allowed_endpoints"`
	AllowedMethods   []string            `yaml:"allowed_methods"`
	Timeouts         Timeouts            `yaml:"timeouts"`
	Connection       Connection          `yaml:"connection"`
	ParamWhitelist   map[string][]string `yaml:"param_whitelist"`
	AllowedOrigins   []string            `yaml:"allowed_origins"`
	RequiredHeaders  []string            `yaml:"required_headers"`
	// CacheEndpoints lists endpoints (same matching as allowed_endpoints)
	// whose POST responses may be cached. GET responses follow HTTP caching
	// rules regardless.
	CacheEndpoints []string `yaml:"cache_endpoints"`
}

// Timeouts of the upstream connection. Zero means "use the process default".
type Timeouts struct {
	// Request bounds a non-streaming request end to end. Streams are never
	// cut by it. Zero: no bound beyond ResponseHeader.
	Request time.Duration `yaml:"request"`
	// ResponseHeader bounds the wait for the upstream's response headers.
	ResponseHeader time.Duration `yaml:"response_header"`
	// IdleConnection is how long an idle upstream connection is kept.
	IdleConnection time.Duration `yaml:"idle_connection"`
	// FlushInterval is accepted for compatibility and ignored: the proxy
	// always flushes every write at once.
	FlushInterval time.Duration `yaml:"flush_interval"`
}

// Connection sizes the upstream connection pool. Zero: process default.
type Connection struct {
	MaxIdleConns        int `yaml:"max_idle_conns"`
	MaxIdleConnsPerHost int `yaml:"max_idle_conns_per_host"`
}

// Provider is a validated, ready-to-use API entry.
type Provider struct {
	Name string
	// BaseURL is the upstream base; its path (possibly empty, never ending
	// in /v1, which the request paths carry) is prepended to every request
	// path.
	BaseURL         *url.URL
	Endpoints       []string // cleaned allowed endpoints
	Methods         []string // upper-case, sorted
	Timeouts        Timeouts
	Connection      Connection
	ParamWhitelist  map[string][]string
	AllowedOrigins  []string
	RequiredHeaders []string // canonical header names
	CacheEndpoints  []string

	endpoints []endpoint
	cache     []endpoint
}

// Load reads the file at path and returns the provider called name, or the
// file's default_api when name is empty or not in the file. An empty path
// returns Default(). Errors name the file and the offending key.
func Load(filePath, name string) (*Provider, error) {
	if filePath == "" {
		return Default(), nil
	}
	data, err := os.ReadFile(filePath)
	if err != nil {
		return nil, fmt.Errorf("API config: %w", err)
	}
	p, err := Parse(data, name)
	if err != nil {
		return nil, fmt.Errorf("API config %s: %w", filePath, err)
	}
	return p, nil
}

// Parse validates a YAML document and returns the selected provider (see
// Load). Every entry of the file is validated, not only the selected one.
func Parse(data []byte, name string) (*Provider, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f File
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if len(f.APIs) == 0 {
		return nil, errors.New("apis: at least one API is required")
	}
	if f.DefaultAPI != "" && f.APIs[f.DefaultAPI] == nil {
		return nil, fmt.Errorf("default_api: %q is not defined under apis", f.DefaultAPI)
	}
	names := make([]string, 0, len(f.APIs))
	for n := range f.APIs {
		names = append(names, n)
	}
	sort.Strings(names)
	providers := make(map[string]*Provider, len(names))
	for _, n := range names {
		p, err := newProvider(n, f.APIs[n])
		if err != nil {
			return nil, fmt.Errorf("apis.%s.%w", n, err)
		}
		providers[n] = p
	}
	switch {
	case providers[name] != nil:
		return providers[name], nil
	case f.DefaultAPI != "":
		return providers[f.DefaultAPI], nil
	case len(names) == 1:
		return providers[names[0]], nil
	}
	return nil, fmt.Errorf("no API named %q and no default_api (have %s)", name, strings.Join(names, ", "))
}

// DefaultBaseURL is the upstream of the built-in default.
const DefaultBaseURL = "https://api.openai.com"

// Default is the built-in provider: the OpenAI API at api.openai.com with
// every endpoint an SDK client uses.
func Default() *Provider {
	p, err := newProvider("openai", &API{
		BaseURL: DefaultBaseURL,
		AllowedEndpoints: []string{
			"/v1/chat/completions", "/v1/completions", "/v1/embeddings",
			"/v1/responses", "/v1/models", "/v1/moderations",
			"/v1/images", "/v1/audio", "/v1/files", "/v1/uploads", "/v1/batches",
		},
		AllowedMethods: []string{"GET", "POST", "DELETE", "OPTIONS"},
	})
	if err != nil {
		panic("apiconfig: invalid built-in default: " + err.Error())
	}
	return p
}

// WithBaseURL returns a copy of p that forwards to base (OPENAI_API_URL,
// tests). base may end in /v1 or not: http://host/v1 and http://host are
// the same upstream.
func (p *Provider) WithBaseURL(base string) (*Provider, error) {
	u, err := parseBaseURL(base)
	if err != nil {
		return nil, err
	}
	c := *p
	c.BaseURL = u
	return &c, nil
}

var knownMethods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodPatch, http.MethodDelete, http.MethodOptions,
}

func newProvider(name string, a *API) (*Provider, error) {
	if a == nil {
		return nil, errors.New("entry is empty")
	}
	u, err := parseBaseURL(a.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("base_url: %w", err)
	}
	p := &Provider{
		Name: name, BaseURL: u, Timeouts: a.Timeouts, Connection: a.Connection,
		ParamWhitelist: map[string][]string{},
	}
	if len(a.AllowedEndpoints) == 0 {
		return nil, errors.New("allowed_endpoints: at least one endpoint is required")
	}
	for i, e := range a.AllowedEndpoints {
		ep, err := parseEndpoint(e)
		if err != nil {
			return nil, fmt.Errorf("allowed_endpoints[%d]: %w", i, err)
		}
		p.endpoints = append(p.endpoints, ep)
		p.Endpoints = append(p.Endpoints, ep.raw)
	}
	for i, e := range a.CacheEndpoints {
		ep, err := parseEndpoint(e)
		if err != nil {
			return nil, fmt.Errorf("cache_endpoints[%d]: %w", i, err)
		}
		p.cache = append(p.cache, ep)
		p.CacheEndpoints = append(p.CacheEndpoints, ep.raw)
	}
	if len(a.AllowedMethods) == 0 {
		return nil, errors.New("allowed_methods: at least one method is required")
	}
	for i, m := range a.AllowedMethods {
		m = strings.ToUpper(strings.TrimSpace(m))
		if !slices.Contains(knownMethods, m) {
			return nil, fmt.Errorf("allowed_methods[%d]: %q is not one of %s", i, a.AllowedMethods[i], strings.Join(knownMethods, ", "))
		}
		if !slices.Contains(p.Methods, m) {
			p.Methods = append(p.Methods, m)
		}
	}
	sort.Strings(p.Methods)
	if a.Timeouts.Request < 0 || a.Timeouts.ResponseHeader < 0 || a.Timeouts.IdleConnection < 0 || a.Timeouts.FlushInterval < -1 {
		return nil, errors.New("timeouts: durations must not be negative")
	}
	if a.Connection.MaxIdleConns < 0 || a.Connection.MaxIdleConnsPerHost < 0 {
		return nil, errors.New("connection: sizes must not be negative")
	}
	for field, globs := range a.ParamWhitelist {
		if field == "" {
			return nil, errors.New("param_whitelist: empty field name")
		}
		if len(globs) == 0 {
			return nil, fmt.Errorf("param_whitelist.%s: at least one pattern is required", field)
		}
		for _, g := range globs {
			if _, err := path.Match(g, ""); err != nil {
				return nil, fmt.Errorf("param_whitelist.%s: pattern %q: %w", field, g, err)
			}
		}
		p.ParamWhitelist[field] = slices.Clone(globs)
	}
	for i, o := range a.AllowedOrigins {
		ou, err := url.Parse(o)
		if err != nil || (ou.Scheme != "http" && ou.Scheme != "https") || ou.Host == "" || (ou.Path != "" && ou.Path != "/") || ou.RawQuery != "" || ou.User != nil {
			return nil, fmt.Errorf("allowed_origins[%d]: %q is not an origin (scheme://host[:port])", i, o)
		}
		p.AllowedOrigins = append(p.AllowedOrigins, strings.ToLower(ou.Scheme+"://"+ou.Host))
	}
	for i, h := range a.RequiredHeaders {
		h = strings.TrimSpace(h)
		if h == "" || strings.ContainsAny(h, " :\t\r\n") {
			return nil, fmt.Errorf("required_headers[%d]: %q is not a header name", i, a.RequiredHeaders[i])
		}
		p.RequiredHeaders = append(p.RequiredHeaders, http.CanonicalHeaderKey(h))
	}
	return p, nil
}

func parseBaseURL(s string) (*url.URL, error) {
	if s == "" {
		return nil, errors.New("required")
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", s, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q must be an absolute http or https URL", s)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("%q must not carry a query, fragment or credentials", s)
	}
	// Request paths carry /v1 themselves: a base written the way OpenAI
	// SDKs, vLLM and Ollama write it (http://host/v1) is the same upstream
	// as http://host, not /v1/v1/….
	u.Path = strings.TrimSuffix(strings.TrimRight(u.Path, "/"), apiVersionPath)
	u.RawPath = ""
	return u, nil
}

// apiVersionPath is the path segment every proxied request path starts
// with; a base URL that ends with it is taken without it.
const apiVersionPath = "/v1"

// endpoint is an allowed path: literal segments, where "*" or "{name}"
// matches any one segment. A path matches when its leading segments match
// all of the endpoint's (so /v1/models allows /v1/models/gpt-4o but not
// /v1/modelsX).
type endpoint struct {
	raw  string
	segs []string
}

func parseEndpoint(s string) (endpoint, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "/") {
		return endpoint{}, fmt.Errorf("%q must start with /", s)
	}
	s = strings.TrimSuffix(s, "/*")
	clean := path.Clean(s)
	if clean == "/" {
		return endpoint{}, fmt.Errorf("%q would allow every path", s)
	}
	segs := strings.Split(clean[1:], "/")
	for i, g := range segs {
		if strings.HasPrefix(g, "{") && strings.HasSuffix(g, "}") {
			segs[i] = "*"
		}
	}
	return endpoint{raw: clean, segs: segs}, nil
}

func (e endpoint) match(reqSegs []string) bool {
	if len(reqSegs) < len(e.segs) {
		return false
	}
	for i, s := range e.segs {
		if s != "*" && s != reqSegs[i] {
			return false
		}
	}
	return true
}

// CleanPath reports whether p is a clean absolute request path (no empty,
// "." or ".." segments), the only kind the proxy forwards.
func CleanPath(p string) bool {
	return strings.HasPrefix(p, "/") && path.Clean(p) == p && !strings.Contains(p, "\\")
}

// AllowsPath reports whether the request path is covered by an allowed
// endpoint. Unclean paths are never allowed.
func (p *Provider) AllowsPath(reqPath string) bool {
	return matchAny(p.endpoints, reqPath)
}

// CachePath reports whether POST responses on reqPath may be cached.
func (p *Provider) CachePath(reqPath string) bool {
	return matchAny(p.cache, reqPath)
}

// Endpoint returns the allowed endpoint that covers reqPath (its
// configured spelling, a bounded set fit for a metrics label), or "".
func (p *Provider) Endpoint(reqPath string) string {
	if e := matchOne(p.endpoints, reqPath); e != nil {
		return e.raw
	}
	return ""
}

func matchAny(eps []endpoint, reqPath string) bool { return matchOne(eps, reqPath) != nil }

// matchOne returns the longest endpoint matching reqPath.
func matchOne(eps []endpoint, reqPath string) *endpoint {
	if !CleanPath(reqPath) || reqPath == "/" {
		return nil
	}
	segs := strings.Split(reqPath[1:], "/")
	var best *endpoint
	for i := range eps {
		if eps[i].match(segs) && (best == nil || len(eps[i].segs) > len(best.segs)) {
			best = &eps[i]
		}
	}
	return best
}

// AllowsMethod reports whether method (upper case) is allowed.
func (p *Provider) AllowsMethod(method string) bool {
	return slices.Contains(p.Methods, method)
}

// AllowHeader is the value of the Allow header for a 405.
func (p *Provider) AllowHeader() string { return strings.Join(p.Methods, ", ") }

// OriginAllowed reports whether a browser origin is listed (case-insensitive).
func (p *Provider) OriginAllowed(origin string) bool {
	return slices.Contains(p.AllowedOrigins, strings.ToLower(strings.TrimRight(origin, "/")))
}

// RequiresHeader reports whether the canonical header name is required.
func (p *Provider) RequiresHeader(name string) bool {
	return slices.Contains(p.RequiredHeaders, http.CanonicalHeaderKey(name))
}

// ParamAllowed checks value (rendered as a string) against the whitelist of
// field. A field without a whitelist allows everything.
func (p *Provider) ParamAllowed(field, value string) bool {
	globs, ok := p.ParamWhitelist[field]
	if !ok {
		return true
	}
	for _, g := range globs {
		if ok, _ := path.Match(g, value); ok {
			return true
		}
	}
	return false
}

// UpstreamURL returns the upstream URL for a request path and raw query: the
// base URL's path joined with the request path.
func (p *Provider) UpstreamURL(reqPath, rawQuery string) *url.URL {
	u := *p.BaseURL
	u.Path = p.BaseURL.Path + reqPath
	u.RawPath = ""
	u.RawQuery = rawQuery
	return &u
}
