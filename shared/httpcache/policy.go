package httpcache

import (
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// directives is a parsed Cache-Control header: lower-case names to values
// ("" for directives without a value).
type directives map[string]string

func parseCacheControl(h http.Header) directives {
	vs := h.Values("Cache-Control")
	if len(vs) == 0 {
		return nil
	}
	d := directives{}
	for _, v := range vs {
		for _, part := range strings.Split(v, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			name, val, _ := strings.Cut(part, "=")
			d[strings.ToLower(strings.TrimSpace(name))] = strings.Trim(strings.TrimSpace(val), `"`)
		}
	}
	return d
}

func (d directives) has(name string) bool {
	_, ok := d[name]
	return ok
}

// seconds returns a delta-seconds directive; ok is false when it is absent
// or malformed.
func (d directives) seconds(name string) (time.Duration, bool) {
	v, ok := d[name]
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	const maxSeconds = int64(1<<63-1) / int64(time.Second)
	if n > maxSeconds {
		n = maxSeconds
	}
	return time.Duration(n) * time.Second, true
}

// reqPolicy is what the request allows.
type reqPolicy struct {
	bypass    string        // non-empty: do not use the cache at all (the reason)
	lookup    bool          // a stored response may answer it
	store     bool          // the response may be stored (subject to responsePolicy)
	forcedTTL time.Duration // client opt-in: Cache-Control: public, max-age=N
	operator  bool          // the path is operator-enabled
	maxAge    time.Duration // the client's max-age: older entries are not served
	hasMaxAge bool
}

func (c *Cache) requestPolicy(r *http.Request, projectID string) reqPolicy {
	if projectID == "" {
		return reqPolicy{bypass: "no-project"}
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodPost:
	default:
		return reqPolicy{bypass: "method"}
	}
	cc := parseCacheControl(r.Header)
	if cc.has("no-store") {
		return reqPolicy{bypass: "no-store"}
	}
	if cc.has("private") {
		return reqPolicy{bypass: "private"}
	}
	p := reqPolicy{lookup: true, store: r.Method != http.MethodHead, operator: c.paths[r.URL.Path]}
	if cc.has("public") {
		if ttl, ok := cc.seconds("s-maxage"); ok && ttl > 0 {
			p.forcedTTL = ttl
		} else if ttl, ok := cc.seconds("max-age"); ok && ttl > 0 {
			p.forcedTTL = ttl
		}
	}
	if r.Method == http.MethodPost && p.forcedTTL == 0 && !p.operator {
		return reqPolicy{bypass: "not-opted-in"}
	}
	if ma, ok := cc.seconds("max-age"); ok {
		p.maxAge, p.hasMaxAge = ma, true
		if ma == 0 {
			p.lookup = false // max-age=0: revalidate
		}
	}
	if cc.has("no-cache") || (cc == nil && strings.EqualFold(strings.TrimSpace(r.Header.Get("Pragma")), "no-cache")) {
		p.lookup = false // revalidate: fetch from upstream, refresh the entry
	}
	return p
}

// responsePolicy decides whether a response may be stored and for how long.
// reason is set when it may not.
func (c *Cache) responsePolicy(p reqPolicy, status int, h http.Header, wantStream bool) (ttl time.Duration, stream bool, reason string) {
	if !p.store {
		return 0, false, "head"
	}
	if status < 200 || status > 299 || status == http.StatusPartialContent {
		return 0, false, "status"
	}
	cc := parseCacheControl(h)
	switch {
	case cc.has("no-store"):
		return 0, false, "no-store"
	case cc.has("private"):
		return 0, false, "private"
	case cc.has("no-cache") && p.forcedTTL == 0 && !p.operator:
		// Without client opt-in or operator config the response's own
		// rules apply; SSE responses commonly say no-cache, so an explicit
		// opt-in overrides it (never no-store or private).
		return 0, false, "no-cache"
	}
	for _, v := range h.Values("Vary") {
		if strings.Contains(v, "*") {
			return 0, false, "vary-star"
		}
	}
	if h.Get("Content-Range") != "" {
		return 0, false, "partial"
	}
	stream = isEventStream(h.Get("Content-Type"))
	if stream && c.opts.SkipStreams {
		return 0, false, "stream-disabled"
	}
	if stream != wantStream {
		return 0, false, "stream-mismatch"
	}
	if cl := h.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n > c.opts.MaxObjectBytes {
			return 0, false, "too-large"
		}
	}
	var upstreamTTL time.Duration
	if d, ok := cc.seconds("s-maxage"); ok {
		upstreamTTL = d
	} else if d, ok := cc.seconds("max-age"); ok {
		upstreamTTL = d
	}
	if upstreamTTL > 0 {
		if age, err := strconv.ParseInt(h.Get("Age"), 10, 64); err == nil && age > 0 {
			upstreamTTL -= time.Duration(age) * time.Second
		}
	}
	switch {
	case upstreamTTL > 0:
		ttl = upstreamTTL
	case p.forcedTTL > 0:
		ttl = p.forcedTTL
	case p.operator:
		ttl = c.opts.DefaultTTL
	default:
		return 0, false, "no-freshness"
	}
	if ttl > c.opts.MaxTTL {
		ttl = c.opts.MaxTTL
	}
	return ttl, stream, ""
}

func isEventStream(ct string) bool {
	if ct == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "text/event-stream"
}

// ignoredVary are request headers that never enter the cache variance: the
// proxy answers CORS itself (its own Vary: Origin must not split entries),
// the client's credentials are replaced by the project's key, and cookies are
// never forwarded. The project is always part of the key.
var ignoredVary = map[string]bool{
	"Origin":                         true,
	"Access-Control-Request-Method":  true,
	"Access-Control-Request-Headers": true,
	"Authorization":                  true,
	"Cookie":                         true,
}

// varyNames returns the names an entry varies on: the always-keyed headers
// plus the response's Vary list, without ignored names.
func (c *Cache) varyNames(h http.Header) []string {
	return canonicalNames(append(append([]string(nil), c.keyHeaders...), responseVary(h)...))
}

// notStored lists response headers never stored in an entry: hop-by-hop
// headers, headers describing this one exchange (date, ids, rate limits,
// cookies), CORS (the proxy sets it per request) and cache status.
var notStored = map[string]bool{
	"Connection":            true,
	"Keep-Alive":            true,
	"Proxy-Authenticate":    true,
	"Proxy-Authorization":   true,
	"Te":                    true,
	"Trailer":               true,
	"Transfer-Encoding":     true,
	"Upgrade":               true,
	"Content-Length":        true,
	"Date":                  true,
	"Age":                   true,
	"Expires":               true,
	"Set-Cookie":            true,
	"Set-Cookie2":           true,
	"X-Request-Id":          true,
	"X-Client-Request-Id":   true,
	"Request-Id":            true,
	"X-Upstream-Request-Id": true,
	"Retry-After":           true,
	"Cache-Status":          true,
	"Alt-Svc":               true,
	"Cf-Ray":                true,
	"Server-Timing":         true,
	"Vary":                  true, // stored filtered (see responseVary)
}

var notStoredPrefixes = []string{"X-Ratelimit-", "Access-Control-", "X-Proxy-", "X-Cache", "Openai-Processing-"}

func storableHeader(name string) bool {
	if notStored[name] {
		return false
	}
	for _, p := range notStoredPrefixes {
		if strings.HasPrefix(name, p) {
			return false
		}
	}
	return true
}

// responseVary is the response's Vary list without the ignored names, as
// stored with an entry and merged into the header of a hit.
func responseVary(h http.Header) []string {
	var out []string
	for _, v := range h.Values("Vary") {
		for _, n := range strings.Split(v, ",") {
			n = http.CanonicalHeaderKey(strings.TrimSpace(n))
			if n != "" && !ignoredVary[n] {
				out = append(out, n)
			}
		}
	}
	return canonicalNames(out)
}
