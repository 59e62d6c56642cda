package ratelimit

import (
	"testing"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

// TestLimitedAgreesWithChecks: limited, the admission's shortcut, says a
// request is limited exactly when checks builds a window for it or the
// lifetime quota counts it, whichever field sets the limit.
func TestLimitedAgreesWithChecks(t *testing.T) {
	one := []func(*llmproxy.Limits, int64){
		func(l *llmproxy.Limits, v int64) { l.RequestsPerMinute = v },
		func(l *llmproxy.Limits, v int64) { l.RequestsPerDay = v },
		func(l *llmproxy.Limits, v int64) { l.TokensPerMinute = v },
		func(l *llmproxy.Limits, v int64) { l.TokensPerDay = v },
	}
	var reqs []Request
	for _, set := range one {
		for _, v := range []int64{-1, 0, 5} {
			for _, ids := range [][2]string{{"t", "p"}, {"t", ""}, {"", "p"}, {"", ""}} {
				var tl, pl llmproxy.Limits
				set(&tl, v)
				set(&pl, v)
				reqs = append(reqs,
					Request{TokenID: ids[0], ProjectID: ids[1], TokenLimits: tl},
					Request{TokenID: ids[0], ProjectID: ids[1], ProjectLimits: pl})
			}
		}
	}
	for _, mr := range []int64{-1, 0, 3} {
		reqs = append(reqs, Request{TokenID: "t", MaxRequests: mr}, Request{ProjectID: "p", MaxRequests: mr})
	}
	for _, r := range reqs {
		want := len(checks(r)) > 0 || (r.MaxRequests > 0 && r.TokenID != "")
		if got := limited(r); got != want {
			t.Errorf("limited(%+v) = %v, checks say %v", r, got, want)
		}
	}
}
