package ratelimit

import (
	"context"
	"fmt"
	"testing"

	"github.com/llm-proxy/llm-proxy/internal/testenv"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

// benchRequest checks every window on token and project, the lifetime
// quota, and reserves tokens: the most expensive admission.
func benchRequest(i int) Request {
	return Request{
		TokenID: fmt.Sprintf("tok-%d", i%100), ProjectID: fmt.Sprintf("prj-%d", i%10),
		MaxRequests:   1 << 40,
		TokenLimits:   llmproxy.Limits{RequestsPerMinute: 1 << 40, RequestsPerDay: 1 << 40, TokensPerMinute: 1 << 50, TokensPerDay: 1 << 50},
		ProjectLimits: llmproxy.Limits{RequestsPerMinute: 1 << 40, RequestsPerDay: 1 << 40, TokensPerMinute: 1 << 50, TokensPerDay: 1 << 50},
		ReserveTokens: 1000,
	}
}

func benchAdmit(b *testing.B, l Limiter) {
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		d, err := l.Admit(ctx, benchRequest(i))
		if err != nil || !d.Allowed {
			b.Fatalf("admit: %+v %v", d, err)
		}
		if err := d.Reservation.Settle(ctx, 500); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkAdmitMemory(b *testing.B) { benchAdmit(b, NewMemory(MemoryOptions{})) }

func BenchmarkAdmitRedis(b *testing.B) {
	c, prefix := testenv.Redis(b)
	benchAdmit(b, NewRedis(c, prefix+"rl:", RedisOptions{}))
}

// BenchmarkAdmitOnlyRedis is one round trip: admission without token windows.
func BenchmarkAdmitOnlyRedis(b *testing.B) {
	c, prefix := testenv.Redis(b)
	l := NewRedis(c, prefix+"rl:", RedisOptions{})
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r := benchRequest(i)
		r.ReserveTokens = 0
		r.TokenLimits.TokensPerMinute, r.TokenLimits.TokensPerDay = 0, 0
		r.ProjectLimits.TokensPerMinute, r.ProjectLimits.TokensPerDay = 0, 0
		if d, err := l.Admit(ctx, r); err != nil || !d.Allowed {
			b.Fatalf("admit: %+v %v", d, err)
		}
		i++
	}
}
