package ratelimit

import (
	"net/http"
	"testing"
	"time"

	"github.com/llm-proxy/llm-proxy/internal/testenv"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

func TestFormatReset(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   time.Duration
		want string
	}{
		{time.Second, "1s"},
		{6 * time.Minute, "6m0s"},
		{20 * time.Millisecond, "20ms"},
		{8640 * time.Millisecond, "8.64s"},
		{1500 * time.Microsecond, "2ms"},
		{0, "0s"},
		{-time.Second, "0s"},
		{25 * time.Hour, "25h0m0s"},
	} {
		if got := FormatReset(tc.in); got != tc.want {
			t.Errorf("FormatReset(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   time.Duration
		want int64
	}{{0, 1}, {time.Millisecond, 1}, {time.Second, 1}, {1001 * time.Millisecond, 2}, {59500 * time.Millisecond, 60}, {-time.Second, 1}} {
		if got := RetryAfterSeconds(tc.in); got != tc.want {
			t.Errorf("RetryAfterSeconds(%v) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestSetHeaders(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		d    Decision
		want map[string]string // "" = absent
	}{
		{
			name: "allowed with both windows",
			d: Decision{Allowed: true,
				Requests: &Window{Limit: 100, Remaining: 99, Reset: 60 * time.Second},
				Tokens:   &Window{Limit: 10000, Remaining: 9000, Reset: 1500 * time.Millisecond}},
			want: map[string]string{
				HeaderLimitRequests: "100", HeaderRemainingRequests: "99", HeaderResetRequests: "1m0s",
				HeaderLimitTokens: "10000", HeaderRemainingTokens: "9000", HeaderResetTokens: "1.5s",
				HeaderRetryAfter: "",
			},
		},
		{
			name: "refused, requests only",
			d: Decision{Code: "rate_limit_exceeded", RetryAfter: 2300 * time.Millisecond,
				Requests: &Window{Limit: 5, Remaining: 0, Reset: 59 * time.Second}},
			want: map[string]string{
				HeaderLimitRequests: "5", HeaderRemainingRequests: "0", HeaderResetRequests: "59s",
				HeaderLimitTokens: "", HeaderRetryAfter: "3",
			},
		},
		{
			name: "no limits",
			d:    Decision{Allowed: true},
			want: map[string]string{HeaderLimitRequests: "", HeaderLimitTokens: "", HeaderRetryAfter: ""},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			SetHeaders(h, tc.d)
			for k, v := range tc.want {
				if got := h.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestRenameUpstreamHeaders(t *testing.T) {
	t.Parallel()
	upstream := func() http.Header {
		return http.Header{
			"X-Ratelimit-Limit-Requests":     {"5000"},
			"X-Ratelimit-Remaining-Requests": {"4999"},
			"X-Ratelimit-Reset-Requests":     {"12ms"},
			"X-Ratelimit-Limit-Tokens":       {"800000"},
			"X-Ratelimit-Remaining-Tokens":   {"799000"},
			"X-Ratelimit-Reset-Tokens":       {"75ms"},
			"Retry-After":                    {"7"},
			"Content-Type":                   {"application/json"},
		}
	}
	t.Run("proxy limits requests only", func(t *testing.T) {
		h := upstream()
		d := Decision{Allowed: true, Requests: &Window{Limit: 10, Remaining: 9, Reset: time.Minute}}
		RenameUpstreamHeaders(h, d)
		SetHeaders(h, d)
		want := map[string]string{
			"X-Ratelimit-Limit-Requests":              "10",
			"X-Ratelimit-Remaining-Requests":          "9",
			"X-Upstream-Ratelimit-Limit-Requests":     "5000",
			"X-Upstream-Ratelimit-Remaining-Requests": "4999",
			"X-Upstream-Ratelimit-Reset-Requests":     "12ms",
			"X-Ratelimit-Limit-Tokens":                "800000", // no proxy token limit: passes through
			"X-Upstream-Ratelimit-Limit-Tokens":       "",
			"Retry-After":                             "7",
			"Content-Type":                            "application/json",
		}
		for k, v := range want {
			if got := h.Get(k); got != v {
				t.Errorf("%s = %q, want %q", k, got, v)
			}
		}
	})
	t.Run("no proxy limits", func(t *testing.T) {
		h := upstream()
		RenameUpstreamHeaders(h, Decision{Allowed: true})
		if len(h) != len(upstream()) || h.Get("X-Ratelimit-Remaining-Tokens") != "799000" {
			t.Fatalf("headers changed without proxy limits: %v", h)
		}
	})
	t.Run("both kinds", func(t *testing.T) {
		h := upstream()
		RenameUpstreamHeaders(h, Decision{Allowed: true, Requests: &Window{}, Tokens: &Window{}})
		for k := range h {
			if len(k) > 12 && k[:12] == "X-Ratelimit-" {
				t.Errorf("upstream header %s not renamed", k)
			}
		}
		if h.Get("X-Upstream-Ratelimit-Reset-Tokens") != "75ms" {
			t.Errorf("renamed tokens reset missing: %v", h)
		}
	})
}

func TestReserveTokens(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ prompt, maxOut, def, want int64 }{
		{100, 500, 1024, 600}, {100, 0, 1024, 1124}, {0, 0, 1024, 1024}, {-1, -5, 10, 10},
	} {
		if got := ReserveTokens(tc.prompt, tc.maxOut, tc.def); got != tc.want {
			t.Errorf("ReserveTokens(%d, %d, %d) = %d, want %d", tc.prompt, tc.maxOut, tc.def, got, tc.want)
		}
	}
}

// TestRetryAfterValues: the Retry-After and x-should-retry a refusal
// carries. A window's wait is exact but never more than the window (the
// first per-minute refusal used to say 61 s, above the 60 s the OpenAI SDKs
// honour), and a client that waits it is admitted by its second try; a
// refusal waiting cannot help (lifetime quota, a request larger than a
// limit) says x-should-retry: false.
func TestRetryAfterValues(t *testing.T) {
	t.Parallel()
	const forever = "86400"
	tests := []struct {
		name        string
		req         Request
		admitFirst  int           // admitted before the refusal
		after       time.Duration // clock advance between them
		retryAfter  string
		shouldRetry string // "" = absent
		code        string
	}{
		{name: "per minute, refused at once", req: Request{TokenLimits: llmproxy.Limits{RequestsPerMinute: 1}},
			admitFirst: 1, retryAfter: "60", code: llmproxy.CodeRateLimitExceeded},
		{name: "per minute, refused 20 s later", req: Request{TokenLimits: llmproxy.Limits{RequestsPerMinute: 1}},
			admitFirst: 1, after: 20 * time.Second, retryAfter: "41", code: llmproxy.CodeRateLimitExceeded},
		{name: "per minute of the project", req: Request{ProjectLimits: llmproxy.Limits{RequestsPerMinute: 2}},
			admitFirst: 2, after: 59 * time.Second, retryAfter: "2", code: llmproxy.CodeRateLimitExceeded},
		{name: "per day, refused at once", req: Request{TokenLimits: llmproxy.Limits{RequestsPerDay: 1}},
			admitFirst: 1, retryAfter: forever, code: llmproxy.CodeRateLimitExceeded},
		{name: "tokens per minute, used up", req: Request{TokenLimits: llmproxy.Limits{TokensPerMinute: 100}, ReserveTokens: 100},
			admitFirst: 1, after: 30 * time.Second, retryAfter: "31", code: llmproxy.CodeRateLimitExceeded},
		{name: "larger than the tokens-per-minute limit", req: Request{TokenLimits: llmproxy.Limits{TokensPerMinute: 100}, ReserveTokens: 101},
			retryAfter: "60", shouldRetry: "false", code: llmproxy.CodeRateLimitExceeded},
		{name: "lifetime quota exhausted", req: Request{MaxRequests: 1, UsedRequests: 1},
			retryAfter: forever, shouldRetry: "false", code: llmproxy.CodeQuotaExceeded},
		{name: "lifetime quota and a window", req: Request{MaxRequests: 1, TokenLimits: llmproxy.Limits{RequestsPerMinute: 1}},
			admitFirst: 1, retryAfter: forever, shouldRetry: "false", code: llmproxy.CodeQuotaExceeded},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			forEach(t, func(t *testing.T, b backend) {
				c := testenv.NewClock(epoch)
				l := b.new(t, 1, c.Now)[0]
				req := tc.req
				req.TokenID, req.ProjectID = ids()
				for i := range tc.admitFirst {
					if d := mustAdmit(t, l, req); !d.Allowed {
						t.Fatalf("request %d refused: %+v", i, d)
					}
				}
				c.Advance(tc.after)
				d := mustAdmit(t, l, req)
				h := http.Header{}
				SetHeaders(h, d)
				if d.Allowed || d.Code != tc.code || h.Get(HeaderRetryAfter) != tc.retryAfter || h.Get(HeaderShouldRetry) != tc.shouldRetry {
					t.Fatalf("decision %+v: %s, Retry-After %q, x-should-retry %q; want %s, %q, %q",
						d, d.Code, h.Get(HeaderRetryAfter), h.Get(HeaderShouldRetry), tc.code, tc.retryAfter, tc.shouldRetry)
				}
				if tc.shouldRetry != "" {
					return
				}
				// A client that waits what it was told is in by its second
				// try: the algorithm frees a unit up to one sub-bucket after
				// the window, and the second refusal says the rest.
				c.Advance(d.RetryAfter)
				if d = mustAdmit(t, l, req); d.Allowed {
					return
				}
				if d.RetryAfter > specs[requestsPerDay].Bucket() || !(tc.retryAfter == "60" || tc.retryAfter == forever) {
					t.Fatalf("refused again after Retry-After: %+v", d)
				}
				c.Advance(d.RetryAfter)
				if d = mustAdmit(t, l, req); !d.Allowed {
					t.Fatalf("refused a third time: %+v", d)
				}
			})
		})
	}
}
