package ratelimit

import (
	"context"
	"hash/maphash"
	"sync"
	"time"
)

// MemoryOptions configures the in-memory limiter.
type MemoryOptions struct {
	// Now is the clock (default time.Now); tests inject their own.
	Now func() time.Time
	// IdleTTL is how long a lifetime request counter is kept after its last
	// use (default 1h). A forgotten counter is seeded again from
	// Request.UsedRequests, which the proxy persists well within this time.
	// Window state is dropped as soon as its window is empty.
	IdleTTL time.Duration
	// Shards is the number of independently locked partitions (default 64).
	// All state of one project lives in one shard.
	Shards int
}

// Memory is the Limiter of one process. All checks of a request happen under
// one lock (its project's shard), so they are atomic: a refusal consumes
// nothing. Memory is bounded by the active tokens and projects: idle state is
// evicted.
type Memory struct {
	now    func() time.Time
	idle   time.Duration
	seed   maphash.Seed
	shards []*shard
}

type shard struct {
	mu        sync.Mutex
	rings     map[ringKey]*ring
	life      map[string]*counter
	lastSweep time.Time
}

// ringKey names a window's state within a shard: like check.key (the
// Redis key), without building a string per request.
type ringKey struct {
	scope byte // 't' or 'p'
	id    string
	kind  kind
}

func (c check) ringKey() ringKey { return ringKey{scope: c.scope[0], id: c.id, kind: c.kind} }

// memHold is what a reservation took from one window: the bucket to give
// back to.
type memHold struct {
	key    ringKey
	bucket int64
}

type counter struct {
	n       int64
	touched time.Time
}

// sweepEvery is how often a shard drops idle state.
const sweepEvery = time.Minute

// NewMemory returns an in-memory limiter.
func NewMemory(opts MemoryOptions) *Memory {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.IdleTTL <= 0 {
		opts.IdleTTL = time.Hour
	}
	if opts.Shards <= 0 {
		opts.Shards = 64
	}
	m := &Memory{now: opts.Now, idle: opts.IdleTTL, seed: maphash.MakeSeed(), shards: make([]*shard, opts.Shards)}
	for i := range m.shards {
		m.shards[i] = &shard{rings: map[ringKey]*ring{}, life: map[string]*counter{}}
	}
	return m
}

func (m *Memory) shard(part string) *shard {
	return m.shards[maphash.String(m.seed, part)%uint64(len(m.shards))]
}

// Admit checks and, when every check passes, consumes all limits of r at once.
func (m *Memory) Admit(_ context.Context, r Request) (Decision, error) {
	if !limited(r) {
		return unlimited(), nil
	}
	cs := checks(r)
	now := m.now()
	sh := m.shard(partition(r))
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.sweep(now, m.idle)

	res := make([]result, len(cs))
	rings := make([]*ring, len(cs))
	refused := false
	for i, c := range cs {
		rg := sh.rings[c.ringKey()]
		if rg == nil {
			rg = newRing(c.kind)
			sh.rings[c.ringKey()] = rg
		}
		cur := rg.advance(now)
		total := rg.sum // the usage counted at cur, which advance just made the last bucket
		rings[i] = rg
		res[i] = result{c: c, total: total, bucket: cur, reset: rg.resetIn(cur, now)}
		if refuse, tooLarge := evaluate(r, c, total); refuse {
			refused = true
			res[i].refuse = true
			if tooLarge {
				res[i].retry = specs[c.kind].Size
			} else {
				res[i].retry = rg.retryAfter(cur, total+c.amount(r)-c.limit, now)
			}
		}
	}

	var life *counter
	quota := false
	if r.MaxRequests > 0 && r.TokenID != "" {
		life = sh.life[r.TokenID]
		if life == nil {
			life = &counter{}
			sh.life[r.TokenID] = life
		}
		life.n = max(life.n, r.UsedRequests)
		life.touched = now
		quota = life.n >= r.MaxRequests
	}
	if refused || quota {
		return decision(r, res, false, quota), nil
	}

	if life != nil {
		life.n++
	}
	var holds []memHold
	for i, c := range cs {
		a := c.amount(r)
		if a > 0 {
			rings[i].add(res[i].bucket, a)
		}
		res[i].reset = rings[i].resetIn(res[i].bucket, now)
		if specs[c.kind].Tokens {
			holds = append(holds, memHold{key: c.ringKey(), bucket: res[i].bucket})
		}
	}
	d := decision(r, res, true, false)
	d.Reservation = noReservation{}
	if len(holds) > 0 {
		d.Reservation = &memReservation{m: m, sh: sh, reserved: max(r.ReserveTokens, 0), holds: holds}
	}
	return d, nil
}

// sweep drops idle state at most once per sweepEvery. Called with sh.mu held.
func (sh *shard) sweep(now time.Time, idle time.Duration) {
	if now.Sub(sh.lastSweep) < sweepEvery {
		return
	}
	sh.lastSweep = now
	for k, rg := range sh.rings {
		if rg.idle(bucketIndex(now, specs[rg.kind])) {
			delete(sh.rings, k)
		}
	}
	for k, c := range sh.life {
		if now.Sub(c.touched) >= idle {
			delete(sh.life, k)
		}
	}
}

// Len reports how many window states and lifetime counters are held (for
// tests and metrics).
func (m *Memory) Len() int {
	n := 0
	for _, sh := range m.shards {
		sh.mu.Lock()
		n += len(sh.rings) + len(sh.life)
		sh.mu.Unlock()
	}
	return n
}

// hold is a reservation's charge in one token window.
type hold struct {
	key    string
	kind   kind
	bucket int64
}

type memReservation struct {
	m        *Memory
	sh       *shard
	reserved int64
	holds    []memHold
	once     sync.Once
}

// Settle replaces the reservation with actual usage: the unused part goes
// back to the bucket it was taken from (while that bucket still counts), an
// excess is charged to the current bucket.
func (r *memReservation) Settle(_ context.Context, actual int64) error {
	r.settle(actual)
	return nil
}

// Release returns the whole reservation.
func (r *memReservation) Release(_ context.Context) error {
	r.release()
	return nil
}

func (r *memReservation) settle(actual int64) {
	r.once.Do(func() { r.adjust(max(actual, 0) - r.reserved) })
}

func (r *memReservation) release() { r.once.Do(func() { r.adjust(-r.reserved) }) }

func (r *memReservation) adjust(delta int64) {
	if delta == 0 {
		return
	}
	now := r.m.now()
	r.sh.mu.Lock()
	defer r.sh.mu.Unlock()
	for _, h := range r.holds {
		rg := r.sh.rings[h.key]
		if rg == nil {
			if delta < 0 {
				continue // evicted: nothing counted any more
			}
			rg = newRing(h.key.kind)
			r.sh.rings[h.key] = rg
		}
		cur := rg.advance(now)
		if delta < 0 {
			rg.refund(h.bucket, cur, -delta)
		} else {
			rg.add(cur, delta)
		}
	}
}
