// Package ratelimit enforces quotas and rate limits atomically: lifetime
// request quotas (max_requests), requests per minute/day and model tokens per
// minute/day, on a token and on its project at once.
//
// Two implementations share one contract: Redis (one Lua script, one round
// trip per admission for all checks; a busy token's admissions are leased
// several at a time, see lease.go) for many processes, and in-memory for
// one.
package ratelimit

import (
	"context"
	"time"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

// Request describes one admission: whose limits apply and how many model
// tokens to reserve.
type Request struct {
	TokenID       string
	ProjectID     string
	TokenLimits   llmproxy.Limits
	ProjectLimits llmproxy.Limits
	// MaxRequests is the token's lifetime quota (0 = none) and UsedRequests
	// the persisted request_count, used to seed the shared counter.
	MaxRequests  int64
	UsedRequests int64
	// ReserveTokens is the number of model tokens to reserve (max output
	// tokens plus estimated prompt tokens); 0 for requests without a model
	// (or cache hits, which do not count toward model-token limits).
	ReserveTokens int64
}

// Window describes one limit's state for response headers.
type Window struct {
	Limit     int64
	Remaining int64
	Reset     time.Duration
}

// Decision is the result of Admit.
type Decision struct {
	Allowed bool
	// Code says which limit refused: llmproxy.CodeQuotaExceeded (lifetime
	// max_requests) or llmproxy.CodeRateLimitExceeded (a window).
	Code string
	// RetryAfter is how long until the request would fit: exact for the
	// algorithm, but never more than the refusing window (see windowRetry);
	// a day for the lifetime quota.
	RetryAfter time.Duration
	// Permanent is true on a refusal waiting cannot help: the lifetime
	// quota is exhausted, or the request needs more than a limit allows.
	// Clients are told not to retry (x-should-retry: false).
	Permanent bool
	// Reason is a client-safe sentence naming the limit that refused the
	// request (e.g. "requests per minute limit of the token (100) reached");
	// empty when Allowed.
	Reason string
	// Requests and Tokens are the tightest request and token windows, for
	// x-ratelimit-* headers; nil when no such limit applies.
	Requests *Window
	Tokens   *Window
	// Reservation must be settled or released exactly once when Allowed.
	Reservation Reservation
}

// Reservation is an admitted request's hold on model-token budgets.
type Reservation interface {
	// Settle replaces the reservation with the actual usage.
	Settle(ctx context.Context, actualTokens int64) error
	// Release returns the reservation (failure, disconnect, cache hit).
	Release(ctx context.Context) error
}

// Limiter admits or refuses requests. Infrastructure failures are returned as
// errors wrapping llmproxy.ErrUnavailable (the caller answers 503, or falls
// back per the configured policy).
type Limiter interface {
	Admit(ctx context.Context, r Request) (Decision, error)
}
