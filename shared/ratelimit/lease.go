package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Leases let the Redis limiter admit most requests without a round trip and
// still never admit more than a limit.
//
// When a token's limits have room, one admission charges k requests at once
// (k × the request's reservation in token windows, k in the lifetime
// counter) and the process hands the other k − 1 out itself. The lease is
// charged before it is used, so across processes no limit is ever exceeded.
// A leased request is used only until the sub-bucket it was charged to ends,
// so it leaves its windows no earlier than one admitted on its own would:
// the sliding-window bound of docs/rate-limits.md holds unchanged. What a
// lease did not use is given back to the bucket it was charged to: in the
// same round trip as the token's next admission, or by a sweep every
// leaseSweep, or on Close.
//
// A lease is sized to what the token's traffic in this process needs until
// the second ends, from its count in the previous second: a token must have
// been busy for a whole second before it leases, so a burst from idle is
// counted request by request, exactly as without leases. A lease also takes
// at most 1/leaseShare of what any of its limits has left, so near a limit
// requests go to Redis one by one. The price is that capacity one process
// holds unused is not available to another until it is given back (at most
// one sub-bucket plus a sweep): leases can make a request be refused early,
// never let one through over a limit.
const (
	leaseShare = 8
	// leaseFloor: no lease when the sub-bucket ends sooner (it would expire
	// before it is used).
	leaseFloor = 20 * time.Millisecond
	// leaseMaxAge bounds a lease on windows with long sub-buckets (a
	// per-day limit alone), so that unused capacity goes back soon.
	leaseMaxAge = time.Second
	leaseSweep  = 250 * time.Millisecond
	// giveBackTimeout bounds a give-back made off the request path.
	giveBackTimeout = 2 * time.Second
)

// leases holds the Redis limiter's current lease per token.
type leases struct {
	l *Redis

	mu       sync.Mutex
	slots    map[string]*leaseSlot
	draining map[*lease]struct{} // out of use, reservations in flight
	closed   bool

	sweepEvery time.Duration // leaseSweep; 0: no sweeper (tests sweep by hand)
	sweeping   sync.Once
	stop       chan struct{}
	swept      chan struct{}
}

type leaseSlot struct {
	cur       *lease
	acquiring chan struct{} // closed when the admission that may lease is done; nil: none
	// The token's admissions in this process, for the size of its leases.
	since time.Time // the slot's creation
	sec   int64     // the current second (Unix time)
	n     int64     // admissions in it
	prev  int64     // admissions in the second before, if the slot saw all of it
}

// demand counts an admission at now and returns how many requests a lease
// taken now should hold (at most most): the previous second's count, pro
// rata for what is left of this second.
func (slot *leaseSlot) demand(now time.Time, most int64) int64 {
	if sec := now.Unix(); sec != slot.sec {
		slot.prev = 0
		if sec == slot.sec+1 && slot.since.Unix() < slot.sec {
			slot.prev = slot.n
		}
		slot.sec, slot.n = sec, 0
	}
	slot.n++
	left := int64(time.Second) - int64(now.Nanosecond())
	return min(most, (slot.prev*left+int64(time.Second)-1)/int64(time.Second))
}

// lease is k requests charged by one admission. Its counters are guarded by
// leases.mu.
type lease struct {
	owner    *leases
	lifeMax  int64
	res      []result // the windows (checks) as the leasing admission saw them
	resetAt  []time.Time
	deadline time.Time // end of the earliest charged sub-bucket, on Redis.clock
	reqHolds []hold
	tokHolds []hold
	life     string // lifetime counter key ("": no quota)
	marker   string // a key of the partition's hash slot (no marker is written)
	granted  int64  // requests charged
	reserved int64  // tokens charged per request

	requests int64 // requests left to hand out
	tokens   int64 // tokens left (reservations settled below it come back)
	inflight int64 // token reservations handed out and not settled yet
	// gone: given back for good, later settlements go to Redis one by one.
	// A lease taken out of use with reservations in flight drains first:
	// their returns gather in tokens and go back with the sweep.
	gone bool
}

func newLeases(l *Redis) *leases {
	return &leases{l: l, slots: map[string]*leaseSlot{}, draining: map[*lease]struct{}{}, sweepEvery: leaseSweep, stop: make(chan struct{}), swept: make(chan struct{})}
}

// take admits r from the token's lease when it has room (ok). Otherwise it
// takes a lease that no longer serves out of use (back: the calls that
// give back what it did not use, for the caller's round trip) and returns
// the lease size the caller should ask for (want; 1: none). A caller given want > 1 must call acquired when its admission is
// done: one admission per token leases at a time. On a first take (which
// counts the admission) of a busy token whose lease is being acquired, it
// returns wait instead: the caller waits for it, then takes again.
func (s *leases) take(r Request, cs []check, now time.Time, most int64, first bool) (d Decision, ok bool, back []scriptCall, want int64, wait <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Decision{}, false, nil, 1, nil
	}
	slot := s.slots[r.TokenID]
	if slot == nil {
		slot = &leaseSlot{since: now, sec: now.Unix()}
		s.slots[r.TokenID] = slot
		s.sweeping.Do(func() { go s.sweep() })
	}
	want = 1
	if first {
		want = slot.demand(now, most)
	}
	if ls := slot.cur; ls != nil {
		need := max(r.ReserveTokens, 0)
		if now.Before(ls.deadline) && ls.matches(r, cs) && ls.requests > 0 && (len(ls.tokHolds) == 0 || ls.tokens >= need) {
			return ls.admit(r, now, need), true, nil, 1, nil
		}
	}
	if slot.acquiring != nil {
		if want > 1 {
			return Decision{}, false, nil, 1, slot.acquiring // the lease it brings replaces the current one
		}
		want = 1
	}
	if slot.cur != nil {
		back = s.detach(slot)
	}
	if want > 1 {
		slot.acquiring = make(chan struct{})
	}
	return Decision{}, false, back, want, nil
}

// acquired ends the leasing admission of token.
func (s *leases) acquired(token string) {
	s.mu.Lock()
	if slot := s.slots[token]; slot != nil && slot.acquiring != nil {
		close(slot.acquiring)
		slot.acquiring = nil
	}
	s.mu.Unlock()
}

// store makes ls the token's lease; the admission that charged it takes
// the first of its requests, and gets the returned Reservation.
func (s *leases) store(token string, ls *lease) Reservation {
	ls.owner = s
	ls.requests = ls.granted - 1
	ls.tokens = (ls.granted - 1) * ls.reserved
	var res Reservation = noReservation{}
	if len(ls.tokHolds) > 0 { // token windows: their reservation settles against the lease
		res = &leaseReservation{ls: ls, reserved: ls.reserved}
		ls.inflight = 1
	}
	s.mu.Lock()
	var back []scriptCall
	slot := s.slots[token]
	switch {
	case s.closed || slot == nil: // closing, or swept meanwhile: nothing may hold it
		back = s.retire(ls)
	default:
		if slot.cur != nil {
			back = s.detach(slot)
		}
		slot.cur = ls
	}
	s.mu.Unlock()
	if len(back) > 0 {
		go s.sendNow(back)
	}
	return res
}

// detach takes the slot's lease out of use and returns the calls that give
// back what it did not use. Called with s.mu held.
func (s *leases) detach(slot *leaseSlot) []scriptCall {
	ls := slot.cur
	slot.cur = nil
	return s.retire(ls)
}

// retire gives back what a lease out of use has not handed out. With token
// reservations still in flight (and the limiter open) it drains: what they
// return gathers in it for the sweep, instead of a round trip each. Called
// with s.mu held.
func (s *leases) retire(ls *lease) []scriptCall {
	back := ls.giveBack()
	if ls.inflight > 0 && !s.closed {
		s.draining[ls] = struct{}{}
	} else {
		ls.gone = true
	}
	return back
}

// matches reports whether r has exactly the limits the lease was charged for.
func (ls *lease) matches(r Request, cs []check) bool {
	if len(cs) != len(ls.res) || max(r.MaxRequests, 0) != ls.lifeMax {
		return false
	}
	for i := range cs {
		if cs[i] != ls.res[i].c {
			return false
		}
	}
	return true
}

// admit hands one request out of the lease. Headers show this process's
// view: the windows as the lease found them plus what it handed out since.
// Called with leases.mu held.
func (ls *lease) admit(r Request, now time.Time, need int64) Decision {
	res := make([]result, len(ls.res))
	for i, w := range ls.res {
		used := ls.granted - ls.requests
		if specs[w.c.kind].Tokens {
			used = ls.granted*ls.reserved - ls.tokens
		}
		res[i] = result{c: w.c, total: w.total + used, reset: max(ls.resetAt[i].Sub(now), 0)}
	}
	d := decision(r, res, true, false)
	ls.requests--
	d.Reservation = noReservation{}
	if len(ls.tokHolds) > 0 {
		ls.tokens -= need
		ls.inflight++
		d.Reservation = &leaseReservation{ls: ls, reserved: need}
	}
	return d
}

// start sets the lease's deadline and reset times from the admission's
// reply: sent is when the call was sent, now the script's time in ms.
func (ls *lease) start(l *Redis, sent time.Time, now int64) {
	if l.opts.Now != nil {
		sent = time.UnixMilli(now) // the injected clock is the script's
	}
	end := now + leaseMaxAge.Milliseconds()
	for _, w := range ls.res {
		if w.c.amount(Request{ReserveTokens: ls.reserved}) > 0 {
			end = min(end, (w.bucket+1)*specs[w.c.kind].Bucket().Milliseconds())
		}
	}
	// The script ran after sent: measured from sent, the lease ends early,
	// never late.
	ls.deadline = sent.Add(ms(end - now))
	ls.resetAt = make([]time.Time, len(ls.res))
	for i, w := range ls.res {
		ls.resetAt[i] = sent.Add(w.reset)
	}
}

// giveBack is the settle calls that return what the lease has not handed
// out, which it then no longer holds. Called with leases.mu held.
func (ls *lease) giveBack() []scriptCall {
	l := ls.owner.l
	var out []scriptCall
	if ls.requests > 0 {
		rr := &redisReservation{l: l, marker: ls.marker, reserved: ls.requests, holds: ls.reqHolds}
		if ls.life != "" {
			rr.life, rr.lifeBack = ls.life, ls.requests
		}
		out = rr.call(0, out)
	}
	if ls.tokens > 0 {
		rr := &redisReservation{l: l, marker: ls.marker, reserved: ls.tokens, holds: ls.tokHolds}
		out = rr.call(0, out)
	}
	ls.requests, ls.tokens = 0, 0
	return out
}

// call appends the settle call for actual usage, if it takes one.
func (r *redisReservation) call(actual int64, out []scriptCall) []scriptCall {
	if keys, args, ok := r.script(actual); ok {
		out = append(out, scriptCall{settleScript, keys, args})
	}
	return out
}

func (s *leases) sweep() {
	defer close(s.swept)
	if s.sweepEvery <= 0 {
		<-s.stop
		return
	}
	t := time.NewTicker(s.sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.sweepExpired()
		}
	}
}

// sweepExpired gives back the leases that ended and what draining leases
// gathered, and forgets tokens idle for a whole second.
func (s *leases) sweepExpired() {
	now := s.l.clock()
	var back []scriptCall
	s.mu.Lock()
	for ls := range s.draining {
		back = append(back, ls.giveBack()...)
		// A reservation never settled (a bug) must not keep it forever; a
		// later settlement then goes to Redis.
		if ls.inflight == 0 || now.After(ls.deadline.Add(s.l.opts.ReservationTTL)) {
			ls.gone = true
			delete(s.draining, ls)
		}
	}
	for token, slot := range s.slots {
		if slot.cur != nil && !now.Before(slot.cur.deadline) {
			back = append(back, s.detach(slot)...)
		}
		if slot.cur == nil && slot.acquiring == nil && slot.sec < now.Unix()-1 {
			delete(s.slots, token)
		}
	}
	s.mu.Unlock()
	s.sendNow(back)
}

// sendNow gives back off the request path, bounded by giveBackTimeout.
func (s *leases) sendNow(calls []scriptCall) {
	ctx, cancel := context.WithTimeout(context.Background(), giveBackTimeout)
	defer cancel()
	_ = s.send(ctx, calls) // logged
}

// close stops leasing and gives back every lease.
func (s *leases) close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	var back []scriptCall
	for ls := range s.draining {
		back = append(back, ls.giveBack()...)
		ls.gone = true
		delete(s.draining, ls)
	}
	for token, slot := range s.slots {
		if slot.cur != nil {
			back = append(back, s.detach(slot)...)
		}
		delete(s.slots, token)
	}
	s.mu.Unlock()
	started := true
	s.sweeping.Do(func() { started = false })
	if started {
		close(s.stop)
		<-s.swept
	}
	return s.send(ctx, back)
}

// send runs give-back calls in one pipeline and logs what failed.
func (s *leases) send(ctx context.Context, calls []scriptCall) error {
	if len(calls) == 0 {
		return nil
	}
	return s.l.logGiveBack(s.l.run(ctx, calls))
}

// Close gives back every lease this limiter holds (in one round trip),
// stops leasing (later admissions each take a round trip) and waits, until
// ctx ends, for the cancellations of admissions without a reply (each makes
// one more attempt at most). Call it before the Redis client is closed.
func (l *Redis) Close(ctx context.Context) error {
	l.closeOnce.Do(func() { close(l.closing) })
	err := l.leases.close(ctx)
	done := make(chan struct{})
	go func() {
		l.cancels.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		err = errors.Join(err, fmt.Errorf("rate limit close: admissions still being cancelled: %w", ctx.Err()))
	}
	return err
}

// scriptCall is one script invocation of a pipeline.
type scriptCall struct {
	script *redis.Script
	keys   []string
	args   []any
}

// run sends calls in one round trip (a single call as Script.Run). Scripts
// the server did not know yet (NOSCRIPT: they did not run) are sent again
// with their source, in a second one.
func (l *Redis) run(ctx context.Context, calls []scriptCall) []*redis.Cmd {
	cmds := make([]*redis.Cmd, len(calls))
	if len(calls) == 1 {
		cmds[0] = calls[0].script.Run(ctx, l.client, calls[0].keys, calls[0].args...)
		return cmds
	}
	pipe := l.client.Pipeline()
	for i, c := range calls {
		cmds[i] = c.script.EvalSha(ctx, pipe, c.keys, c.args...)
	}
	_, _ = pipe.Exec(ctx) // errors are per command
	var again redis.Pipeliner
	for i, c := range calls {
		if isNoScript(cmds[i].Err()) {
			if again == nil {
				again = l.client.Pipeline()
			}
			cmds[i] = c.script.Eval(ctx, again, c.keys, c.args...)
		}
	}
	if again != nil {
		_, _ = again.Exec(ctx)
	}
	return cmds
}

// logGiveBack logs the give-back calls that failed: what they would have
// returned stays charged until it leaves its windows (conservative).
func (l *Redis) logGiveBack(cmds []*redis.Cmd) error {
	var failed int
	var last error
	for _, c := range cmds {
		if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
			failed++
			last = err
		}
	}
	if failed == 0 {
		return nil
	}
	l.log.Warn("unused rate limit lease not given back: it stays charged until it leaves its windows",
		"count", failed, "error", last.Error())
	return last
}

// leaseReservation is the token reservation of a request handed out of a
// lease. While the lease is in use, settling adjusts the lease without a
// round trip; afterwards it settles in Redis against the lease's buckets.
type leaseReservation struct {
	ls       *lease
	reserved int64
	done     atomic.Bool
}

// Settle replaces the reservation with the actual usage.
func (r *leaseReservation) Settle(ctx context.Context, actual int64) error {
	return r.apply(ctx, "settle", max(actual, 0))
}

// Release returns the whole reservation.
func (r *leaseReservation) Release(ctx context.Context) error { return r.apply(ctx, "release", 0) }

func (r *leaseReservation) apply(ctx context.Context, op string, actual int64) error {
	if rr, a := r.local(actual); rr != nil {
		return rr.apply(ctx, op, a)
	}
	return nil
}

// local settles in the lease when it is still in use. Otherwise, or for
// usage beyond what the lease has left, it returns the Redis reservation to
// settle with a; nil: nothing left to do. Exactly once: later calls return
// nil.
func (r *leaseReservation) local(actual int64) (rr *redisReservation, a int64) {
	if r.done.Swap(true) {
		return nil, 0
	}
	ls := r.ls
	s := ls.owner
	s.mu.Lock()
	defer s.mu.Unlock()
	if ls.gone {
		return &redisReservation{l: s.l, marker: ls.marker, reserved: r.reserved, holds: ls.tokHolds}, actual
	}
	ls.inflight--
	ls.tokens += r.reserved - actual
	if ls.tokens >= 0 {
		return nil, 0
	}
	short := -ls.tokens // more than the lease has left: charged now, not when it is given back
	ls.tokens = 0
	return &redisReservation{l: s.l, marker: ls.marker, holds: ls.tokHolds}, short
}
