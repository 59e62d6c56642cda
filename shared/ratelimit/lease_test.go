package ratelimit

import (
	"context"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/llm-proxy/llm-proxy/internal/testenv"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

// leaseEnv is one Redis key space shared by limiters standing in for
// processes, on one injected clock.
type leaseEnv struct {
	t      *testing.T
	clock  *testenv.Clock
	prefix string
	client *redis.Client // for direct reads of the limiter's keys
}

func newLeaseEnv(t *testing.T) *leaseEnv {
	t.Helper()
	_, prefix := testenv.Redis(t)
	c := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr()})
	t.Cleanup(func() { _ = c.Close() })
	return &leaseEnv{t: t, clock: testenv.NewClock(epoch), prefix: prefix + "rl:", client: c}
}

// process returns a limiter with its own client; lease 0 leases nothing.
// On the injected clock the tests sweep by hand (sweepExpired): a sweeper
// on real time would give leases back at moments the test does not choose.
func (e *leaseEnv) process(lease int64) (*Redis, *countingHook) {
	c := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(), PoolSize: 64})
	h := &countingHook{}
	c.AddHook(h)
	opts := RedisOptions{Now: e.clock.Now, Lease: lease}
	if e.clock == nil {
		opts.Now = nil
	}
	l := NewRedis(c, e.prefix, opts)
	if e.clock != nil {
		l.leases.sweepEvery = 0
	}
	e.t.Cleanup(func() {
		_ = l.Close(context.Background())
		_ = c.Close()
	})
	return l, h
}

// warm makes l's traffic for r busy for a whole second: one admission at
// epoch (hh:mm:30.5), perSecond in the second from :31, then the clock is
// at :32.0, where a lease may hold up to perSecond requests. It returns the
// number admitted.
func (e *leaseEnv) warm(l *Redis, r Request, perSecond int) int {
	e.t.Helper()
	mustAdmit(e.t, l, r)
	e.clock.Advance(500 * time.Millisecond)
	for range perSecond {
		if d := mustAdmit(e.t, l, r); !d.Allowed {
			e.t.Fatalf("warm-up refused: %+v", d)
		}
	}
	e.clock.Advance(time.Second)
	return perSecond + 1
}

// counted is what Redis holds for r's tightest request window, read by an
// admission of a limiter without leases: the requests counted before it.
func (e *leaseEnv) counted(r Request) int64 {
	e.t.Helper()
	l, _ := e.process(0)
	d := mustAdmit(e.t, l, r)
	if !d.Allowed {
		return d.Requests.Limit
	}
	if err := d.Reservation.Release(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	return d.Requests.Limit - d.Requests.Remaining - 1
}

// busyToken is a leasing process whose token, with limits and reserving
// reserve tokens per request, has been busy for a whole second: its next
// admission takes a lease. It returns how many requests were admitted.
func busyToken(t *testing.T, limits llmproxy.Limits, reserve int64) (*leaseEnv, *Redis, *countingHook, Request, int) {
	t.Helper()
	e := newLeaseEnv(t)
	l, hook := e.process(32)
	tok, prj := ids()
	r := Request{TokenID: tok, ProjectID: prj, TokenLimits: limits, ReserveTokens: reserve}
	return e, l, hook, r, e.warm(l, r, 40)
}

// countedTokens is what Redis holds for r's tightest token window, read by
// an admission (of 1 token) of a limiter without leases.
func (e *leaseEnv) countedTokens(r Request) int64 {
	e.t.Helper()
	l, _ := e.process(0)
	r.ReserveTokens = 1
	d := mustAdmit(e.t, l, r)
	return d.Tokens.Limit - d.Tokens.Remaining - 1
}

func closeLimiter(t *testing.T, l *Redis) {
	t.Helper()
	if err := l.Close(context.Background()); err != nil {
		t.Fatalf("close: %v", err)
	}
}

// TestLeaseAdmitsWithoutRoundTrips: a busy token is admitted from a lease,
// one round trip per lease; its headers count down; leased reservations
// settle without a round trip; Close gives back exactly what was not used.
func TestLeaseAdmitsWithoutRoundTrips(t *testing.T) {
	t.Parallel()
	e := newLeaseEnv(t)
	l, hook := e.process(32)
	metrics := NewMetrics()
	l.opts.Metrics = metrics
	tok, prj := ids()
	limits := llmproxy.Limits{RequestsPerMinute: 1000, RequestsPerDay: 100_000, TokensPerMinute: 1_000_000, TokensPerDay: 10_000_000}
	r := Request{TokenID: tok, ProjectID: prj, TokenLimits: limits, ProjectLimits: llmproxy.Limits{RequestsPerMinute: 10_000},
		MaxRequests: 100_000, ReserveTokens: 100}
	admitted := e.warm(l, r, 40) // reservations left charged: 100 tokens each
	tokens := int64(admitted) * 100

	before := hook.scriptTrips.Load()
	var first Decision
	for i := range 32 {
		d := mustAdmit(t, l, r)
		if !d.Allowed {
			t.Fatalf("admission %d refused: %+v", i, d)
		}
		if i == 0 {
			first = d
		} else if got, want := d.Requests.Remaining, first.Requests.Remaining-int64(i); got != want {
			t.Fatalf("admission %d: remaining requests %d, want %d", i, got, want)
		}
		if _, ok := d.Reservation.(*leaseReservation); !ok && i > 0 {
			t.Fatalf("admission %d: reservation %T, want one out of the lease", i, d.Reservation)
		}
		if err := d.Reservation.Settle(context.Background(), 30); err != nil {
			t.Fatal(err)
		}
		tokens += 30
	}
	admitted += 32
	if got := hook.scriptTrips.Load() - before; got != 1 {
		t.Fatalf("32 leased admissions and settlements took %d round trips, want 1", got)
	}
	var m dto.Metric
	if err := metrics.Leased.Write(&m); err != nil {
		t.Fatal(err)
	}
	if got := m.GetCounter().GetValue(); got != 31 {
		t.Fatalf("llm_proxy_ratelimit_leased_total = %v, want 31 (the 32 but the one that leased)", got)
	}
	if d := mustAdmit(t, l, r); !d.Allowed || hook.scriptTrips.Load()-before != 2 {
		t.Fatalf("33rd admission: %+v after %d round trips, want admitted by a second lease", d, hook.scriptTrips.Load()-before)
	}
	admitted++
	tokens += 100

	closeLimiter(t, l)
	if got := e.counted(r); got != int64(admitted) {
		t.Fatalf("after Close Redis counts %d requests, want the %d admitted", got, admitted)
	}
	life, err := e.client.Get(context.Background(), e.prefix+"{"+prj+"}:life:"+tok).Int64()
	if err != nil || life != int64(admitted)+1 { // + the read of counted
		t.Fatalf("lifetime counter = %d (%v), want %d", life, err, admitted+1)
	}
	if got := e.countedTokens(r); got != tokens {
		t.Fatalf("Redis counts %d tokens, want %d (reservations, settled values)", got, tokens)
	}
}

// TestLeaseEndsWithItsBucket: a lease is not used after the sub-bucket it
// was charged to ends; what it did not use goes back in the same round trip
// as the next admission, or with the sweep when none comes.
func TestLeaseEndsWithItsBucket(t *testing.T) {
	t.Parallel()
	for _, next := range []string{"admission", "sweep"} {
		t.Run(next, func(t *testing.T) {
			t.Parallel()
			e, l, hook, r, admitted := busyToken(t, llmproxy.Limits{RequestsPerMinute: 1000}, 0)
			for range 5 {
				mustAdmit(t, l, r)
			}
			admitted += 5
			e.clock.Advance(999 * time.Millisecond)
			mustAdmit(t, l, r) // :32.999, still the lease's bucket
			admitted++
			e.clock.Advance(time.Millisecond)
			if err := settleScript.Load(context.Background(), e.client).Err(); err != nil {
				t.Fatal(err) // as on a server that has given back before
			}
			before := hook.scriptTrips.Load()
			switch next {
			case "admission": // which takes a new lease
				mustAdmit(t, l, r)
				admitted++
				l.leases.mu.Lock()
				admitted += int(l.leases.slots[r.TokenID].cur.requests)
				l.leases.mu.Unlock()
				if got := hook.scriptTrips.Load() - before; got != 1 {
					t.Fatalf("give-back and admission took %d round trips, want 1", got)
				}
			case "sweep":
				l.leases.sweepExpired()
			}
			// Without Close: Redis already has the unused part back (and
			// counts the new lease whole).
			if got := e.counted(r); got != int64(admitted) {
				t.Fatalf("Redis counts %d requests, want the %d admitted", got, admitted)
			}
		})
	}
}

// TestLeaseFollowsLimits: a changed limit is not served from a lease taken
// under the old one.
func TestLeaseFollowsLimits(t *testing.T) {
	t.Parallel()
	_, l, hook, r, admitted := busyToken(t, llmproxy.Limits{RequestsPerMinute: 1000}, 0)
	mustAdmit(t, l, r) // takes a lease
	admitted++
	lowered := r
	lowered.TokenLimits.RequestsPerMinute = int64(admitted)
	before := hook.scriptTrips.Load()
	if d := mustAdmit(t, l, lowered); d.Allowed || d.Requests.Remaining != 0 {
		t.Fatalf("lowered limit: %+v, want refused from Redis (the lease's unused part given back)", d)
	}
	if hook.scriptTrips.Load() == before {
		t.Fatal("lowered limit was decided without Redis")
	}
}

// TestLeaseSettlesAfterGiveBack: a reservation out of a lease that was
// given back settles in Redis, against the bucket it was charged to.
func TestLeaseSettlesAfterGiveBack(t *testing.T) {
	t.Parallel()
	e, l, _, r, admitted := busyToken(t, llmproxy.Limits{TokensPerMinute: 100_000}, 100)
	var held []Decision
	for range 4 {
		held = append(held, mustAdmit(t, l, r))
	}
	closeLimiter(t, l)
	for _, d := range held {
		if err := d.Reservation.Settle(context.Background(), 10); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := e.countedTokens(r), int64(admitted)*100+4*10; got != want {
		t.Fatalf("Redis counts %d tokens, want %d", got, want)
	}
}

// TestLeasesNeverOverspend: processes that lease from one token's limits
// in a concurrent burst admit no more than the limit, leave at most a
// lease each unused, and after Close Redis counts exactly what they
// admitted. The same for the lifetime quota.
func TestLeasesNeverOverspend(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		limit int64
		req   func(r Request) Request
	}{
		{"requests per minute", 400, func(r Request) Request { r.TokenLimits.RequestsPerMinute = 400; return r }},
		{"lifetime quota", 400, func(r Request) Request { r.MaxRequests = 400; return r }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newLeaseEnv(t)
			tok, prj := ids()
			r := tc.req(Request{TokenID: tok, ProjectID: prj})
			var ls []Limiter
			var warmed int64
			for i := range 3 {
				l, _ := e.process(32)
				ls = append(ls, l)
				if i > 0 {
					e.clock.Advance(-1500 * time.Millisecond) // every process warms in the same seconds
				}
				warmed += int64(e.warm(l, r, 40))
			}
			got := int64(countAllowed(admitMany(t, ls, 600, func(int) Request { return r })))
			room := tc.limit - warmed
			if got > room || got < room-3*32 {
				t.Fatalf("burst admitted %d, want between %d and %d", got, room-3*32, room)
			}
			for _, l := range ls {
				closeLimiter(t, l.(*Redis))
			}
			counted := int64(0)
			if tc.limit == r.MaxRequests {
				var err error
				counted, err = e.client.Get(context.Background(), e.prefix+"{"+prj+"}:life:"+tok).Int64()
				if err != nil {
					t.Fatal(err)
				}
			} else {
				counted = e.counted(r)
			}
			if counted != warmed+got {
				t.Fatalf("after Close Redis counts %d, want the %d admitted", counted, warmed+got)
			}
		})
	}
}

// TestLeaseSweeperGivesBack: on real time, a token that stops sending has
// its unused lease given back by the sweeper within its second plus a
// sweep, without Close.
func TestLeaseSweeperGivesBack(t *testing.T) {
	t.Parallel()
	e := newLeaseEnv(t)
	e.clock = nil // the server's TIME and the process's clock
	l, hook := e.process(32)
	tok, prj := ids()
	r := Request{TokenID: tok, ProjectID: prj, TokenLimits: llmproxy.Limits{RequestsPerMinute: 100_000}}
	admitted := 0
	admit := func(d time.Duration) {
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(2 * time.Millisecond) {
			if d := mustAdmit(t, l, r); !d.Allowed {
				t.Fatalf("refused: %+v", d)
			}
			admitted++
		}
	}
	admit(2100 * time.Millisecond) // busy for a whole second: leases from here
	before, n := hook.scriptTrips.Load(), admitted
	admit(time.Second)
	if trips, n := hook.scriptTrips.Load()-before, admitted-n; trips*4 > int64(n) {
		t.Fatalf("a busy second: %d admissions took %d round trips, want leases", n, trips)
	}
	time.Sleep(time.Second + 2*leaseSweep)
	if got := e.counted(r); got != int64(admitted) {
		t.Fatalf("Redis counts %d requests, want the %d admitted", got, admitted)
	}
}

// TestLeaseDrains: reservations still in flight when their lease is
// replaced settle without a round trip each; what they return goes back
// with the sweep, to the buckets the lease charged.
func TestLeaseDrains(t *testing.T) {
	t.Parallel()
	e, l, hook, r, admitted := busyToken(t, llmproxy.Limits{TokensPerMinute: 1_000_000}, 100)
	tokens := int64(admitted) * 100 // the warm-up's reservations stay charged
	var held []Decision
	for range 33 { // the 33rd takes a second lease
		held = append(held, mustAdmit(t, l, r))
	}
	before := hook.scriptTrips.Load()
	for _, d := range held {
		if err := d.Reservation.Settle(context.Background(), 10); err != nil {
			t.Fatal(err)
		}
		tokens += 10
	}
	if got := hook.scriptTrips.Load() - before; got != 0 {
		t.Fatalf("settling 33 leased reservations took %d round trips, want 0", got)
	}
	l.leases.sweepExpired() // the first lease drained: one round trip gives its tokens back
	if got := hook.scriptTrips.Load() - before; got != 1 {
		t.Fatalf("the sweep took %d round trips, want 1", got)
	}
	l.leases.mu.Lock()
	draining := len(l.leases.draining)
	l.leases.mu.Unlock()
	if draining != 0 {
		t.Fatalf("%d leases still draining, want none", draining)
	}
	closeLimiter(t, l)
	if got := e.countedTokens(r); got != tokens {
		t.Fatalf("Redis counts %d tokens, want %d", got, tokens)
	}
}
