package ratelimit

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

var (
	//go:embed lib.lua
	libLua string
	//go:embed admit.lua
	admitLua    string
	admitScript = redis.NewScript(libLua + admitLua)
	//go:embed settle.lua
	settleLua    string
	settleScript = redis.NewScript(libLua + settleLua)
	//go:embed cancel.lua
	cancelLua    string
	cancelScript = redis.NewScript(libLua + cancelLua)
)

// An admission is idempotent: its script writes an admission marker (its
// reply) that a second run of the same call finds, so it charges once
// whatever is retried or delivered late. When the caller gets no reply (a
// timeout, a closed connection: the script may have run, or may still
// run), the admission is cancelled in the background: cancel.lua gives its
// charge back, or marks it so that it charges nothing if it runs later.
const (
	// admissionTTL is how long the marker lives: the bound within which a
	// late copy of an admission is recognised and a cancellation takes
	// effect.
	admissionTTL = 15 * time.Second
	// cancelFor is how long a cancellation is retried while Redis does not
	// answer (less than admissionTTL, so that it lands while the marker
	// lives).
	cancelFor = 10 * time.Second
)

// RedisOptions configures the Redis limiter.
type RedisOptions struct {
	// Now, when set, is the clock whose time is sent with every call (tests).
	// By default the Redis server's TIME is used, so that every process
	// agrees on the window whatever its own clock says.
	Now func() time.Time
	// LifetimeTTL is how long an unused lifetime request counter is kept
	// (default 30 days); afterwards it is seeded again from
	// Request.UsedRequests.
	LifetimeTTL time.Duration
	// ReservationTTL bounds how long a reservation can be settled or released
	// (default 6h); after it, Settle and Release change nothing.
	ReservationTTL time.Duration
	// Lease is the most requests of one token a single admission may charge
	// at once, for this process to admit them itself until the current
	// sub-bucket ends (see lease.go); 0 or 1: every request is a round trip.
	Lease int64
	// Log receives failures to give back unused leases (nil: discarded).
	Log *slog.Logger
	// Metrics counts leased admissions (nil: not counted).
	Metrics *Metrics
}

// Redis is the Limiter shared by many processes. One Lua script checks and
// consumes every limit of a request in one round trip, atomically.
type Redis struct {
	client redis.UniversalClient
	prefix string
	opts   RedisOptions
	log    *slog.Logger
	leases *leases

	cancels   sync.WaitGroup // cancellations in flight (Close waits for them)
	closing   chan struct{}  // closed by Close: cancellations stop retrying
	closeOnce sync.Once
	pending   atomic.Int64 // how many (tests)
}

// NewRedis returns a limiter that keeps its state in Redis under prefix (e.g.
// REDIS_KEY_PREFIX + "rl:"). Keys expire when their windows are empty. All
// keys of one request share a hash tag (the project), so it works on Redis
// Cluster too.
func NewRedis(client redis.UniversalClient, prefix string, opts RedisOptions) *Redis {
	if opts.LifetimeTTL <= 0 {
		opts.LifetimeTTL = 30 * 24 * time.Hour
	}
	if opts.ReservationTTL <= 0 {
		opts.ReservationTTL = 6 * time.Hour
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Redis{client: client, prefix: prefix, opts: opts, log: log, closing: make(chan struct{})}
	l.leases = newLeases(l)
	return l
}

// clock is the time leases are measured on: RedisOptions.Now or the
// process's clock.
func (l *Redis) clock() time.Time {
	if l.opts.Now != nil {
		return l.opts.Now()
	}
	return time.Now()
}

func (l *Redis) nowMillis() int64 {
	if l.opts.Now == nil {
		return 0
	}
	return l.opts.Now().UnixMilli()
}

func (l *Redis) key(part, name string) string {
	return l.prefix + "{" + part + "}:" + name
}

// Admit checks and, when every check passes, consumes all limits of r in one
// atomic script. With leases on (RedisOptions.Lease), most requests are
// admitted from a lease this process holds, without a round trip.
func (l *Redis) Admit(ctx context.Context, r Request) (Decision, error) {
	if !limited(r) {
		return unlimited(), nil // nothing to count: no round trip
	}
	cs := checks(r)
	var back []scriptCall
	leaseMax := int64(1)
	if l.opts.Lease > 1 && r.TokenID != "" {
		d, ok, stale, want, wait := l.leases.take(r, cs, l.clock(), l.opts.Lease, true)
		if wait != nil { // another admission is bringing a lease: cheaper than a round trip of our own
			select {
			case <-wait:
			case <-ctx.Done():
				return Decision{}, l.fail(ctx, "admit", ctx.Err())
			}
			var more []scriptCall
			d, ok, more, want, _ = l.leases.take(r, cs, l.clock(), l.opts.Lease, false)
			stale = append(stale, more...)
		}
		if ok {
			if l.opts.Metrics != nil {
				l.opts.Metrics.Leased.Inc()
			}
			return d, nil
		}
		back = stale
		if want > 1 {
			leaseMax = want
			defer l.leases.acquired(r.TokenID)
		}
	}
	a := l.admission(r, cs, leaseMax)
	keys, lifeMax, hasTokens, marked := a.keys, a.lifeMax, a.hasTokens, a.marked
	part := partition(r)
	sent := l.clock()
	calls := append(back, scriptCall{admitScript, keys, a.args})
	cmds := l.run(ctx, calls)
	l.logGiveBack(cmds[:len(cmds)-1])
	vals, err := cmds[len(cmds)-1].Int64Slice()
	if err != nil {
		if !isNoScript(err) { // the script may have run, or may still run
			l.cancel(r, cs, a)
		}
		return Decision{}, l.fail(ctx, "admit", err)
	}
	if len(vals) != 4+5*len(cs) {
		l.cancel(r, cs, a)
		return Decision{}, llmproxy.Wrap(llmproxy.ErrUnavailable, llmproxy.CodeUnavailable, "rate limiter unavailable",
			fmt.Errorf("rate limit admit: unexpected reply of %d values", len(vals)))
	}
	allowed, quota, leased := vals[0] == 1, vals[1] == 1, vals[3]
	res := make([]result, len(cs))
	var holds, reqHolds []hold
	for i, c := range cs {
		v := vals[4+5*i:]
		res[i] = result{c: c, total: v[0], refuse: v[1] == 1, retry: ms(v[2]), reset: ms(v[3]), bucket: v[4]}
		h := hold{key: keys[i], kind: c.kind, bucket: v[4]}
		if specs[c.kind].Tokens {
			holds = append(holds, h)
		} else {
			reqHolds = append(reqHolds, h)
		}
	}
	d := decision(r, res, allowed, quota)
	if !allowed {
		return d, nil
	}
	d.Reservation = noReservation{}
	switch {
	case leased > 1:
		ls := &lease{
			lifeMax: lifeMax, res: res, reqHolds: reqHolds, tokHolds: holds,
			marker: l.key(part, "res:"), granted: leased, reserved: max(r.ReserveTokens, 0),
		}
		if lifeMax > 0 {
			ls.life = keys[len(cs)]
		}
		ls.start(l, sent, vals[2])
		d.Reservation = l.leases.store(r.TokenID, ls)
	case hasTokens:
		d.Reservation = &redisReservation{l: l, marker: keys[len(cs)+1], marked: marked, reserved: max(r.ReserveTokens, 0), holds: holds}
	}
	return d, nil
}

// admissionCall is one admission's script call.
type admissionCall struct {
	keys      []string // windows, lifetime counter, reservation marker, admission marker
	args      []any
	lifeMax   int64 // the lifetime quota counted (0: none)
	hasTokens bool  // a token window applies
	marked    bool  // the admission writes a reservation marker
}

// admission builds the admit script's call for r and its checks cs,
// charging up to leaseMax requests; each call has an admission id of its
// own.
func (l *Redis) admission(r Request, cs []check, leaseMax int64) admissionCall {
	part := partition(r)
	keys := make([]string, 0, len(cs)+3)
	for _, c := range cs {
		keys = append(keys, l.key(part, c.key()))
	}
	hasTokens := false
	for _, c := range cs {
		hasTokens = hasTokens || specs[c.kind].Tokens
	}
	// A reservation of 0 tokens has nothing to give back: no marker, so its
	// Release costs no round trip (a Settle of actual usage still charges).
	marked := hasTokens && r.ReserveTokens > 0
	resID := ""
	if marked {
		resID = newID()
	}
	keys = append(keys, l.key(part, "life:"+r.TokenID), l.key(part, "res:"+resID), l.key(part, "adm:"+newID()))
	lifeMax := int64(0)
	if r.TokenID != "" {
		lifeMax = max(r.MaxRequests, 0)
	}
	resTTL := int64(0)
	if marked {
		resTTL = l.opts.ReservationTTL.Milliseconds()
	}
	args := make([]any, 0, 10+5*len(cs))
	args = append(args, l.nowMillis(), len(cs), lifeMax, max(r.UsedRequests, 0), l.opts.LifetimeTTL.Milliseconds(), resTTL,
		leaseMax, leaseShare, leaseFloor.Milliseconds(), admissionTTL.Milliseconds())
	for _, c := range cs {
		s := specs[c.kind]
		enforced := 0
		if c.enforced(r) {
			enforced = 1
		}
		args = append(args, c.limit, s.Bucket().Milliseconds(), s.Buckets, c.amount(r), enforced)
	}
	return admissionCall{keys: keys, args: args, lifeMax: lifeMax, hasTokens: hasTokens, marked: marked}
}

// cancel makes the admission of r with keys charge nothing, in the
// background: retried for cancelFor while Redis does not answer (each try
// is idempotent), or until Close. A cancellation that never lands leaves the charge until
// it leaves its windows (a lifetime charge: for good), and is logged.
func (l *Redis) cancel(r Request, cs []check, a admissionCall) {
	keys, args := a.keys, a.cancelArgs(r, cs)
	l.pending.Add(1)
	l.cancels.Go(func() {
		defer l.pending.Add(-1)
		giveUp := time.Now().Add(cancelFor)
		wait := 20 * time.Millisecond
		for {
			ctx, stop := context.WithTimeout(context.Background(), giveBackTimeout)
			err := cancelScript.Run(ctx, l.client, keys, args...).Err()
			stop()
			if err == nil || errors.Is(err, redis.Nil) {
				return
			}
			stopped := time.Now().Add(wait).After(giveUp)
			if !stopped {
				select {
				case <-time.After(wait):
				case <-l.closing:
					stopped = true
				}
			}
			if stopped {
				l.log.Warn("rate limit admission without a reply not cancelled: its charge stays until it leaves its windows",
					"error", err.Error())
				return
			}
			wait = min(2*wait, time.Second)
		}
	})
}

// cancelArgs are the cancel script's arguments for the admission a of r.
func (a admissionCall) cancelArgs(r Request, cs []check) []any {
	counted := 0
	if a.lifeMax > 0 {
		counted = 1
	}
	args := make([]any, 0, 3+len(cs))
	args = append(args, len(cs), admissionTTL.Milliseconds(), counted)
	for _, c := range cs {
		args = append(args, c.amount(r))
	}
	return args
}

func ms(v int64) time.Duration { return time.Duration(v) * time.Millisecond }

// fail turns a Redis error into an error wrapping llmproxy.ErrUnavailable;
// a cancelled or expired caller context is returned as itself (the client
// went away: not an outage).
func (l *Redis) fail(ctx context.Context, op string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("rate limit %s: %w", op, ctxErr)
	}
	return llmproxy.Wrap(llmproxy.ErrUnavailable, llmproxy.CodeUnavailable, "rate limiter unavailable",
		fmt.Errorf("rate limit %s: %w", op, err))
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

type redisReservation struct {
	l        *Redis
	marker   string
	marked   bool // the admission wrote the marker (reserved > 0)
	reserved int64
	holds    []hold
	// life and lifeBack give requests back to the lifetime counter (what a
	// lease did not use); lifeBack 0: none.
	life     string
	lifeBack int64

	mu     sync.Mutex
	done   bool
	queued atomic.Bool // handed to a Settler
}

// Settle replaces the reservation with actual usage (see memReservation).
// The marker key makes it exactly-once even when a reply is lost and the
// call is retried.
func (r *redisReservation) Settle(ctx context.Context, actual int64) error {
	return r.apply(ctx, "settle", max(actual, 0))
}

// Release returns the whole reservation.
func (r *redisReservation) Release(ctx context.Context) error {
	return r.apply(ctx, "release", 0)
}

func (r *redisReservation) apply(ctx context.Context, op string, actual int64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return nil
	}
	keys, args, ok := r.script(actual)
	if !ok {
		r.done = true
		return nil
	}
	if err := settleScript.Run(ctx, r.l.client, keys, args...).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return r.l.fail(ctx, op, err)
	}
	r.done = true
	return nil
}

// script returns the settle script's keys and arguments for actual usage
// (0 for a release); ok is false when there is nothing to send: a
// reservation of 0 tokens that used none has no marker and no delta.
// Called with r.mu held.
func (r *redisReservation) script(actual int64) (keys []string, args []any, ok bool) {
	delta := actual - r.reserved
	if !r.needsTrip(actual) {
		return nil, nil, false
	}
	keys = make([]string, 0, len(r.holds)+2)
	args = make([]any, 0, 5+3*len(r.holds))
	marked := 0
	if r.marked {
		marked = 1
	}
	args = append(args, r.l.nowMillis(), len(r.holds), delta, marked, r.lifeBack)
	for _, h := range r.holds {
		s := specs[h.kind]
		keys = append(keys, h.key)
		args = append(args, s.Bucket().Milliseconds(), s.Buckets, h.bucket)
	}
	life := r.life
	if life == "" {
		life = r.marker // unused; a key of the same hash slot
	}
	keys = append(keys, r.marker, life)
	return keys, args, true
}

// String describes the limiter for logs.
func (l *Redis) String() string { return "redis(" + strconv.Quote(l.prefix) + ")" }
