package dispatcher

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// ClaimState is the outcome of claiming an event for delivery.
type ClaimState int

// Claim outcomes.
const (
	Claimed  ClaimState = iota + 1 // ours to deliver
	Done                           // already delivered: a duplicate
	InFlight                       // another delivery is under way (retry later)
)

// Deduper remembers which (source, id) pairs were delivered. Claim takes a
// short lease on each key that is neither done nor leased; Done records the
// delivery (for the dedup TTL); Release gives a lease back after a failure.
// A crashed holder's lease expires by itself.
type Deduper interface {
	Claim(ctx context.Context, keys []string, lease string) ([]ClaimState, error)
	Done(ctx context.Context, keys []string) error
	Release(ctx context.Context, keys []string, lease string) error
}

func newLease() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "lease:" + hex.EncodeToString(b[:])
}

const doneValue = "done"

// RedisDedup keeps dedup state in Redis under a prefix: SET NX with a lease
// TTL to claim, SET with the dedup TTL once delivered.
type RedisDedup struct {
	rdb      redis.UniversalClient
	prefix   string
	ttl      time.Duration
	leaseTTL time.Duration
}

// NewRedisDedup stores keys as <prefix><key>; delivered keys live for ttl, a
// claim lease for leaseTTL (it should exceed one backend delivery).
func NewRedisDedup(rdb redis.UniversalClient, prefix string, ttl, leaseTTL time.Duration) *RedisDedup {
	return &RedisDedup{rdb: rdb, prefix: prefix, ttl: ttl, leaseTTL: leaseTTL}
}

// Claim implements Deduper.
func (d *RedisDedup) Claim(ctx context.Context, keys []string, lease string) ([]ClaimState, error) {
	out := make([]ClaimState, len(keys))
	pipe := d.rdb.Pipeline()
	sets := make([]*redis.BoolCmd, len(keys))
	for i, k := range keys {
		sets[i] = pipe.SetNX(ctx, d.prefix+k, lease, d.leaseTTL)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("dedup claim: %w", err)
	}
	gets := make([]*redis.StringCmd, len(keys))
	pipe = d.rdb.Pipeline()
	n := 0
	for i, c := range sets {
		if c.Val() {
			out[i] = Claimed
			continue
		}
		gets[i] = pipe.Get(ctx, d.prefix+keys[i])
		n++
	}
	if n > 0 {
		if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
			return nil, fmt.Errorf("dedup lookup: %w", err)
		}
		for i, g := range gets {
			if g == nil {
				continue
			}
			switch v, err := g.Result(); {
			case err == redis.Nil:
				out[i] = InFlight // expired between SET NX and GET: try again later
			case v == doneValue:
				out[i] = Done
			default:
				out[i] = InFlight
			}
		}
	}
	return out, nil
}

// Done implements Deduper.
func (d *RedisDedup) Done(ctx context.Context, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	pipe := d.rdb.Pipeline()
	for _, k := range keys {
		pipe.Set(ctx, d.prefix+k, doneValue, d.ttl)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("dedup done: %w", err)
	}
	return nil
}

var releaseScript = redis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)

// Release implements Deduper: it deletes only leases it holds.
func (d *RedisDedup) Release(ctx context.Context, keys []string, lease string) error {
	for _, k := range keys {
		if err := releaseScript.Run(ctx, d.rdb, []string{d.prefix + k}, lease).Err(); err != nil && err != redis.Nil {
			return fmt.Errorf("dedup release: %w", err)
		}
	}
	return nil
}

// claimAll is the Deduper of a dispatcher whose backend deduplicates by
// itself (IdempotentBackend): every event is claimed, nothing is recorded.
type claimAll struct{}

func (claimAll) Claim(_ context.Context, keys []string, _ string) ([]ClaimState, error) {
	out := make([]ClaimState, len(keys))
	for i := range out {
		out[i] = Claimed
	}
	return out, nil
}

func (claimAll) Done(context.Context, []string) error            { return nil }
func (claimAll) Release(context.Context, []string, string) error { return nil }

// MemoryDedup is a bounded in-process Deduper: at most max keys; the oldest
// are forgotten first.
//
// The keys live in a ring of slots (map key → slot), so that claiming a new
// key costs one lookup, one insert and, once full, one delete, and marking
// it done one lookup. Keys and leases are held as hashes (see keyHasher):
// nothing in it is a pointer for the garbage collector to trace.
type MemoryDedup struct {
	mu       sync.Mutex
	ttl      time.Duration
	leaseTTL time.Duration
	max      int
	hasher   keyHasher
	m        map[keyHash]int32 // key → its slot
	slots    []memSlot         // a ring of at most max slots, oldest at next once full
	next     int
	epoch    time.Time // expiry times are offsets from it (monotonic)
	now      func() time.Time
}

// memSlot is one remembered key; used is false once the slot is free
// (released).
type memSlot struct {
	key     keyHash
	used    bool
	done    bool          // delivered; else leased
	lease   uint64        // the hash of the lease, while leased
	expires time.Duration // since epoch
}

// NewMemoryDedup remembers up to max keys (default 100000) for ttl.
func NewMemoryDedup(max int, ttl, leaseTTL time.Duration) *MemoryDedup {
	if max <= 0 {
		max = 100000
	}
	max = min(max, math.MaxInt32)
	return &MemoryDedup{ttl: ttl, leaseTTL: leaseTTL, max: max, hasher: newKeyHasher(), m: map[keyHash]int32{}, epoch: time.Now(), now: time.Now}
}

// Claim implements Deduper.
func (d *MemoryDedup) Claim(_ context.Context, keys []string, lease string) ([]ClaimState, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now().Sub(d.epoch)
	lh := d.hasher.lease(lease)
	out := make([]ClaimState, len(keys))
	for i, k := range keys {
		h := d.hasher.hash(k)
		j, ok := d.m[h]
		switch {
		case !ok:
			d.insert(memSlot{key: h, lease: lh, expires: now + d.leaseTTL})
			out[i] = Claimed
		case now < d.slots[j].expires && d.slots[j].done:
			out[i] = Done
		case now < d.slots[j].expires:
			out[i] = InFlight
		default: // expired: claimed anew, in its slot
			d.slots[j].done, d.slots[j].lease, d.slots[j].expires = false, lh, now+d.leaseTTL
			out[i] = Claimed
		}
	}
	return out, nil
}

// Done implements Deduper.
func (d *MemoryDedup) Done(_ context.Context, keys []string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	exp := d.now().Sub(d.epoch) + d.ttl
	for _, k := range keys {
		h := d.hasher.hash(k)
		if j, ok := d.m[h]; ok {
			d.slots[j].done, d.slots[j].lease, d.slots[j].expires = true, 0, exp
		} else {
			d.insert(memSlot{key: h, done: true, expires: exp})
		}
	}
	return nil
}

// Release implements Deduper: it frees only keys leased with lease.
func (d *MemoryDedup) Release(_ context.Context, keys []string, lease string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	lh := d.hasher.lease(lease)
	for _, k := range keys {
		h := d.hasher.hash(k)
		if j, ok := d.m[h]; ok && !d.slots[j].done && d.slots[j].lease == lh {
			delete(d.m, h)
			d.slots[j] = memSlot{}
		}
	}
	return nil
}

// insert remembers s, whose key is not remembered yet, forgetting the
// oldest key once max keys are.
func (d *MemoryDedup) insert(s memSlot) {
	s.used = true
	if len(d.slots) < d.max {
		d.m[s.key] = int32(len(d.slots))
		d.slots = append(d.slots, s)
		return
	}
	j := d.next
	d.next = (d.next + 1) % len(d.slots)
	if old := d.slots[j]; old.used {
		delete(d.m, old.key)
	}
	d.slots[j] = s
	d.m[s.key] = int32(j)
}
