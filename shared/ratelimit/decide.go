package ratelimit

import (
	"context"
	"time"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

// result is one window's state as an implementation read it for a request.
type result struct {
	c      check
	total  int64         // usage counted before this request
	refuse bool          // this window refuses the request
	retry  time.Duration // when refused: until enough has left the window
	reset  time.Duration // until the window is empty (after the request, if admitted)
	bucket int64         // sub-bucket the request was charged to
}

// evaluate decides one window: total is the usage before the request.
func evaluate(r Request, c check, total int64) (refuse, tooLarge bool) {
	if !c.enforced(r) {
		return false, false
	}
	a := c.amount(r)
	return total+a > c.limit, a > c.limit
}

// decision assembles the Decision for the results of one request. quota is
// true when the lifetime quota refused it.
func decision(r Request, res []result, allowed, quota bool) Decision {
	d := Decision{Allowed: allowed}
	for _, w := range res {
		used := w.total
		if allowed {
			used += w.c.amount(r)
		}
		win := Window{Limit: w.c.limit, Remaining: max(w.c.limit-used, 0), Reset: w.reset}
		if specs[w.c.kind].Tokens {
			d.Tokens = pickTighter(d.Tokens, win)
		} else {
			d.Requests = pickTighter(d.Requests, win)
		}
	}
	if allowed {
		return d
	}
	switch {
	case quota:
		d.Code = llmproxy.CodeQuotaExceeded
		d.RetryAfter = quotaRetryAfter
		d.Reason = "the token's request quota (max_requests) is exhausted"
		d.Permanent = true
	default:
		d.Code = llmproxy.CodeRateLimitExceeded
		for _, w := range res {
			if !w.refuse {
				continue
			}
			if a := w.c.amount(r); a > w.c.limit {
				// Larger than the limit itself: no wait lets it in.
				d.RetryAfter, d.Reason, d.Permanent = w.c.spec().Size, w.c.tooLarge(a), true
				continue
			}
			if retry := windowRetry(w); retry >= d.RetryAfter && !d.Permanent {
				d.RetryAfter, d.Reason = retry, w.c.reason()
			}
		}
	}
	d.RetryAfter = max(d.RetryAfter, time.Millisecond)
	d.Reservation = noReservation{}
	return d
}

// limited reports whether any limit applies to r: a window of the token or
// its project, or the token's lifetime quota (what checks would return,
// without building it).
func limited(r Request) bool {
	windows := func(id string, l llmproxy.Limits) bool {
		if id == "" {
			return false
		}
		for _, v := range windowLimits(l) {
			if v > 0 {
				return true
			}
		}
		return false
	}
	return (r.MaxRequests > 0 && r.TokenID != "") || windows(r.TokenID, r.TokenLimits) || windows(r.ProjectID, r.ProjectLimits)
}

// windowLimits are l's window limits in kind order (0: none), what checks
// and limited both read.
func windowLimits(l llmproxy.Limits) [4]int64 {
	return [4]int64{l.RequestsPerMinute, l.RequestsPerDay, l.TokensPerMinute, l.TokensPerDay}
}

// unlimited is the Decision for a request no limit applies to.
func unlimited() Decision { return Decision{Allowed: true, Reservation: noReservation{}} }

// noReservation is the Reservation of refused requests and of requests that
// hold no token budget.
type noReservation struct{}

func (noReservation) Settle(context.Context, int64) error { return nil }
func (noReservation) Release(context.Context) error       { return nil }

// windowRetry is the wait a window's refusal tells the client: until
// enough usage has left the window for the request to fit, but never more
// than the window. The algorithm frees a unit up to one sub-bucket after
// the window (docs/rate-limits.md), so the exact wait of the first refusal
// after a unit was taken is just over the window (60.x s for a per-minute
// limit), which the OpenAI SDKs ignore (they honour at most 60 s): told the
// window, a client that retries then is at most one sub-bucket early, and
// its next refusal says the short rest.
func windowRetry(w result) time.Duration {
	return min(w.retry, w.c.spec().Size)
}
