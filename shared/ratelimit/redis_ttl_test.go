package ratelimit

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/llm-proxy/llm-proxy/internal/testenv"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

// The scripts renew a window's TTL only when its newest bucket moves (a
// PEXPIRE per request would be a third of their Redis calls): every key
// must still carry a TTL after admissions, refusals and settlements, across
// bucket changes, and none may outlive its window by more than two buckets.
func TestRedisKeysAlwaysExpire(t *testing.T) {
	c, prefix := testenv.Redis(t)
	ctx := context.Background()
	clk := testenv.NewClock(time.UnixMilli(1_800_000_000_000))
	l := NewRedis(c, prefix+"rl:", RedisOptions{Now: clk.Now, LifetimeTTL: time.Hour})
	limits := llmproxy.Limits{RequestsPerMinute: 4, RequestsPerDay: 1000, TokensPerMinute: 1_000_000, TokensPerDay: 10_000_000}
	req := Request{TokenID: "tok", ProjectID: "prj", MaxRequests: 1000, TokenLimits: limits, ProjectLimits: limits, ReserveTokens: 100}
	longest := time.Duration(specs[tokensPerDay].Buckets+2) * (specs[tokensPerDay].Size / time.Duration(specs[tokensPerDay].Buckets))

	checkTTLs := func(stage string) {
		t.Helper()
		keys, err := c.Keys(ctx, prefix+"rl:*").Result()
		if err != nil || len(keys) == 0 {
			t.Fatalf("%s: keys %v, %v", stage, keys, err)
		}
		for _, k := range keys {
			bound := longest
			if strings.Contains(k, ":life:") {
				bound = time.Hour // the lifetime counter lives LifetimeTTL past its last use
			}
			ttl, err := c.PTTL(ctx, k).Result()
			if err != nil || ttl <= 0 || ttl > bound {
				t.Fatalf("%s: key %s has TTL %v (%v), want within (0, %v]", stage, k, ttl, err, bound)
			}
		}
	}
	admitted, refused := 0, 0
	for step := range 12 {
		d, err := l.Admit(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if !d.Allowed {
			refused++
			checkTTLs("after a refusal")
		} else {
			admitted++
			checkTTLs("after an admission")
			used := int64(50 + 100*(step%2)) // under and over the reservation
			if err := d.Reservation.Settle(ctx, used); err != nil {
				t.Fatal(err)
			}
			checkTTLs("after a settlement")
		}
		clk.Advance(7 * time.Second) // moves the per-minute windows' bucket every time
	}
	if admitted == 0 || refused == 0 {
		t.Fatalf("admitted %d, refused %d: the test must see both", admitted, refused)
	}
}
