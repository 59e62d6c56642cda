package ratelimit

import (
	"context"
	"fmt"
	"testing"
	"time"

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

// BenchmarkSettlerPaced settles Redis reservations at a steady 5,000/s, as
// the proxy does under moderate load, with and without gathering:
// cpu-ns/op is the process CPU per settlement (the benchmark's own pacing
// included), round-trips/op how many pipelines each took.
func BenchmarkSettlerPaced(b *testing.B) {
	for _, bc := range []struct {
		name   string
		gather time.Duration
	}{{"gather=off", -1}, {"gather=default", 0}} {
		b.Run(bc.name, func(b *testing.B) { benchSettlerPaced(b, bc.gather) })
	}
}

func benchSettlerPaced(b *testing.B, gather time.Duration) {
	c, prefix := testenv.Redis(b)
	hook := &countingHook{}
	c.AddHook(hook)
	l := NewRedis(c, prefix+"rl:", RedisOptions{})
	ctx := context.Background()
	res := make([]Reservation, 0, 4096)
	for i := range cap(res) {
		d, err := l.Admit(ctx, benchRequest(i))
		if err != nil || !d.Allowed {
			b.Fatalf("admit: %+v %v", d, err)
		}
		res = append(res, d.Reservation)
	}
	if err := settleScript.Load(ctx, c).Err(); err != nil {
		b.Fatal(err)
	}
	s := NewSettler(SettlerOptions{Gather: gather})
	start, trips := testenv.ProcessCPU(b), hook.scriptTrips.Load()
	next := time.Now()
	n := 0
	for b.Loop() {
		next = next.Add(200 * time.Microsecond)
		time.Sleep(time.Until(next))
		s.Settle(res[n%len(res)], 500) // past the first round, settled ones cost nothing
		n++
		if n%len(res) == 0 {
			b.StopTimer()
			b.Fatalf("run with -benchtime up to %dx", len(res))
		}
	}
	if err := s.Close(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64((testenv.ProcessCPU(b)-start).Nanoseconds())/float64(n), "cpu-ns/op")
	b.ReportMetric(float64(hook.scriptTrips.Load()-trips)/float64(n), "round-trips/op")
}

// BenchmarkAdmitRedisLeased is BenchmarkAdmitRedis for one busy token with
// leases on (RATE_LIMIT_LEASE's default): admit and settle, round-trips/op
// the Redis round trips each took.
func BenchmarkAdmitRedisLeased(b *testing.B) {
	c, prefix := testenv.Redis(b)
	hook := &countingHook{}
	c.AddHook(hook)
	clk := testenv.NewClock(epoch)
	l := NewRedis(c, prefix+"rl:", RedisOptions{Now: clk.Now, Lease: 32})
	l.leases.sweepEvery = 0
	ctx := context.Background()
	r := benchRequest(0)
	admit := func() {
		d, err := l.Admit(ctx, r)
		if err != nil || !d.Allowed {
			b.Fatalf("admit: %+v %v", d, err)
		}
		if err := d.Reservation.Settle(ctx, 500); err != nil {
			b.Fatal(err)
		}
	}
	admit() // the token's first second is not whole: no lease
	clk.Advance(500 * time.Millisecond)
	for range 100 {
		admit()
	}
	clk.Advance(time.Second) // the clock stays at the start of a second after a busy one
	trips := hook.scriptTrips.Load()
	b.ReportAllocs()
	for b.Loop() {
		admit()
	}
	b.ReportMetric(float64(hook.scriptTrips.Load()-trips)/float64(b.N), "round-trips/op")
	if err := l.Close(ctx); err != nil {
		b.Fatal(err)
	}
}
