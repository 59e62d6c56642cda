package ratelimit

import (
	"fmt"
	"time"
)

// kind is one of the four windowed limits.
type kind uint8

const (
	requestsPerMinute kind = iota
	requestsPerDay
	tokensPerMinute
	tokensPerDay
)

// spec describes a sliding window: Size split into Buckets sub-buckets of
// Bucket each. A check counts the current sub-bucket and the Buckets before
// it, so it covers at least the last Size (and at most Size+Bucket): no
// rolling window of length Size ever holds more than the limit, and a unit is
// at most one Bucket late to free up (see docs/rate-limits.md).
type spec struct {
	Name    string // "rpm", …: key suffix
	Label   string // for messages
	Size    time.Duration
	Buckets int64
	Tokens  bool
}

// Bucket is the width of one sub-bucket.
func (s spec) Bucket() time.Duration { return s.Size / time.Duration(s.Buckets) }

var specs = [...]spec{
	requestsPerMinute: {Name: "rpm", Label: "requests per minute", Size: time.Minute, Buckets: 60, Tokens: false},
	requestsPerDay:    {Name: "rpd", Label: "requests per day", Size: 24 * time.Hour, Buckets: 144, Tokens: false},
	tokensPerMinute:   {Name: "tpm", Label: "tokens per minute", Size: time.Minute, Buckets: 60, Tokens: true},
	tokensPerDay:      {Name: "tpd", Label: "tokens per day", Size: 24 * time.Hour, Buckets: 144, Tokens: true},
}

// check is one window limit that applies to a request.
type check struct {
	scope string // "token" or "project"
	id    string
	kind  kind
	limit int64
}

func (c check) spec() spec { return specs[c.kind] }

// key is the state's name, unique within one project's partition.
func (c check) key() string { return c.scope[:1] + ":" + c.id + ":" + c.spec().Name }

func (c check) reason() string {
	return fmt.Sprintf("%s limit of the %s (%d) reached", c.spec().Label, c.scope, c.limit)
}

func (c check) tooLarge(amount int64) string {
	return fmt.Sprintf("request reserves %d tokens, more than the %s limit of the %s (%d)", amount, c.spec().Label, c.scope, c.limit)
}

// amount is what the request consumes in this window.
func (c check) amount(r Request) int64 {
	if specs[c.kind].Tokens {
		return max(r.ReserveTokens, 0)
	}
	return 1
}

// enforced reports whether admission checks this window: token windows are
// only checked for requests that reserve tokens (cache hits and requests
// without a model reserve nothing and are not refused for tokens), but they
// are still part of the reservation so that Settle charges actual usage.
func (c check) enforced(r Request) bool {
	return !specs[c.kind].Tokens || r.ReserveTokens > 0
}

// checks lists the windows that apply to r, token first, then project.
func checks(r Request) []check {
	out := make([]check, 0, 8)
	add := func(scope, id string, l [4]int64) {
		if id == "" {
			return
		}
		for k, v := range l {
			if v > 0 {
				out = append(out, check{scope: scope, id: id, kind: kind(k), limit: v})
			}
		}
	}
	add("token", r.TokenID, windowLimits(r.TokenLimits))
	add("project", r.ProjectID, windowLimits(r.ProjectLimits))
	return out
}

// partition is the id that groups all state of a request: its project (so
// that one lock, or one Redis Cluster slot, covers token and project).
func partition(r Request) string {
	if r.ProjectID != "" {
		return r.ProjectID
	}
	return r.TokenID
}

// quotaRetryAfter is the Retry-After of a refusal by the lifetime quota,
// which never refills: long enough that clients stop retrying.
const quotaRetryAfter = 24 * time.Hour

// pickTighter chooses the window to report in headers: the one with the
// fewest remaining, and of equals the one that takes longer to reset.
func pickTighter(cur *Window, w Window) *Window {
	if cur == nil || w.Remaining < cur.Remaining || (w.Remaining == cur.Remaining && w.Reset > cur.Reset) {
		return &w
	}
	return cur
}
