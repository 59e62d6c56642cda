// Package templates holds the admin UI's templ components: one layout, one
// component per page, and the small helpers they share (URLs under a base
// path, times in UTC with a machine-readable value for local conversion,
// status badges, icons).
//
// Components receive view data that never holds a secret: projects carry
// only the masked key hint, tokens only their hint (the plaintext appears in
// TokenCreated alone, once). Audit details are rendered through Redact, which
// hides values under secret-looking keys as a second line of defence.
//
// Regenerate the *_templ.go files after editing a .templ file:
//
//	go run github.com/a-h/templ/cmd/templ@v0.3.1100 generate -path templates
package templates

import (
	"net/url"
	"strings"

	"github.com/a-h/templ"
)

// Page is what every page needs besides its own data.
type Page struct {
	// Base is the base path ("" at the root, "/admin" in llm-proxy serve).
	Base string
	// Title is the page title (without the " - LLM Proxy Admin" suffix).
	Title string
	// Nav names the active navigation entry: dashboard, projects, tokens,
	// audit.
	Nav string
	// CSRF is the session's form token (empty when signed out).
	CSRF string
	// SignedIn shows the navigation and the sign-out button.
	SignedIn bool
	// AssetVersion is appended to asset URLs (?v=) to bust caches; numeric.
	AssetVersion string
	// Flash is a one-line success message; Error an error message.
	Flash string
	Error string
}

// URL returns path under the base path, with optional query pairs
// (key, value, key, value…; empty values are left out).
func (p Page) URL(path string, kv ...string) templ.SafeURL {
	return templ.SafeURL(Href(p.Base, path, kv...))
}

// Href is URL as a plain string (for redirects).
func Href(base, path string, kv ...string) string {
	u := base + path
	if u == "" {
		u = "/"
	}
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			q.Add(kv[i], kv[i+1])
		}
	}
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// Asset returns the versioned URL of an embedded static file.
func (p Page) Asset(name string) templ.SafeURL {
	return templ.SafeURL(p.Base + "/static/" + name + "?v=" + p.AssetVersion)
}

// navAttrs marks the current navigation entry for assistive technology.
func (p Page) navAttrs(name string) templ.Attributes {
	if p.Nav == name {
		return templ.Attributes{"aria-current": "page", "class": "nav-link active"}
	}
	return templ.Attributes{"class": "nav-link"}
}

// Option is an entry of a select.
type Option struct {
	Value, Label string
}

// DurationOptions are the lifetimes offered when generating a token (the
// original's values, in minutes); 15 minutes is preselected.
var DurationOptions = []Option{
	{"5", "5 minutes"}, {"10", "10 minutes"}, {"15", "15 minutes"}, {"30", "30 minutes"},
	{"60", "1 hour"}, {"120", "2 hours"}, {"180", "3 hours"}, {"360", "6 hours"}, {"720", "12 hours"},
	{"1440", "1 day"}, {"2880", "2 days"}, {"4320", "3 days"}, {"10080", "7 days"},
	{"43200", "30 days"}, {"525600", "365 days"},
}

// DefaultDuration is the preselected lifetime in minutes.
const DefaultDuration = "15"

// secretKeys are detail keys whose values are never shown.
var secretKeys = []string{"api_key", "apikey", "token", "secret", "password", "authorization", "hash", "key"}

// Redact returns v, or a placeholder when key looks like it names a secret.
// Ids (token_id, project_id…) and counters stay visible.
func Redact(key, v string) string {
	k := strings.ToLower(key)
	if strings.HasSuffix(k, "_id") || strings.HasSuffix(k, "_count") || strings.HasSuffix(k, "_hint") || strings.HasPrefix(k, "updated_") || k == "tokens_revoked" {
		return v
	}
	for _, s := range secretKeys {
		if k == s || strings.HasSuffix(k, "_"+s) {
			return "[redacted]"
		}
	}
	return v
}
