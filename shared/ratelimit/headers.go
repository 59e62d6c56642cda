package ratelimit

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// OpenAI's rate-limit header names.
const (
	HeaderLimitRequests     = "X-Ratelimit-Limit-Requests"
	HeaderRemainingRequests = "X-Ratelimit-Remaining-Requests"
	HeaderResetRequests     = "X-Ratelimit-Reset-Requests"
	HeaderLimitTokens       = "X-Ratelimit-Limit-Tokens"
	HeaderRemainingTokens   = "X-Ratelimit-Remaining-Tokens"
	HeaderResetTokens       = "X-Ratelimit-Reset-Tokens"
	HeaderRetryAfter        = "Retry-After"
	// HeaderShouldRetry is the OpenAI SDKs' override of their retry
	// policy: "false" stops their retries of a 429.
	HeaderShouldRetry = "X-Should-Retry"

	// UpstreamHeaderPrefix replaces "X-Ratelimit-" on upstream headers that
	// collide with the proxy's own (see RenameUpstreamHeaders).
	UpstreamHeaderPrefix = "X-Upstream-Ratelimit-"
)

// SetHeaders writes the proxy's own x-ratelimit-* headers for d: the
// tightest request window and the tightest token window, each only when such
// a limit applies, Retry-After (whole seconds, at least 1) on a refusal, and
// x-should-retry: false on a refusal waiting cannot help (d.Permanent).
func SetHeaders(h http.Header, d Decision) {
	// One backing array for every value (the names are canonical): one
	// allocation instead of one per header.
	var vals []string
	set := func(name, v string) {
		vals = append(vals, v)
		h[name] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	if d.Requests != nil || d.Tokens != nil || !d.Allowed {
		vals = make([]string, 0, 8)
	}
	if w := d.Requests; w != nil {
		set(HeaderLimitRequests, strconv.FormatInt(w.Limit, 10))
		set(HeaderRemainingRequests, strconv.FormatInt(w.Remaining, 10))
		set(HeaderResetRequests, FormatReset(w.Reset))
	}
	if w := d.Tokens; w != nil {
		set(HeaderLimitTokens, strconv.FormatInt(w.Limit, 10))
		set(HeaderRemainingTokens, strconv.FormatInt(w.Remaining, 10))
		set(HeaderResetTokens, FormatReset(w.Reset))
	}
	if !d.Allowed {
		set(HeaderRetryAfter, strconv.FormatInt(RetryAfterSeconds(d.RetryAfter), 10))
		if d.Permanent {
			set(HeaderShouldRetry, "false")
		}
	}
}

// FormatReset renders a reset duration the way OpenAI does ("1s", "6m0s",
// "20ms"), rounded to milliseconds.
func FormatReset(d time.Duration) string {
	return max(d, 0).Round(time.Millisecond).String()
}

// RetryAfterSeconds rounds d up to whole seconds, at least 1.
func RetryAfterSeconds(d time.Duration) int64 {
	return max(int64((d+time.Second-1)/time.Second), 1)
}

// RenameUpstreamHeaders resolves collisions between upstream's
// x-ratelimit-* headers and the proxy's: when the proxy reports a limit of
// the same kind (requests or tokens) for d, upstream's header of that kind is
// renamed to x-upstream-ratelimit-*; otherwise it passes through unchanged.
// Call it on the upstream response headers before SetHeaders. Upstream's
// Retry-After is never touched (SetHeaders only sets it on the proxy's own
// refusals, which never reach upstream).
func RenameUpstreamHeaders(h http.Header, d Decision) {
	const prefix = "X-Ratelimit-"
	for name, vals := range h {
		rest, ok := strings.CutPrefix(http.CanonicalHeaderKey(name), prefix)
		if !ok {
			continue
		}
		lower := strings.ToLower(rest)
		collides := (d.Requests != nil && strings.HasSuffix(lower, "-requests")) ||
			(d.Tokens != nil && strings.HasSuffix(lower, "-tokens"))
		if !collides {
			continue
		}
		delete(h, name)
		h[UpstreamHeaderPrefix+rest] = vals
	}
}
