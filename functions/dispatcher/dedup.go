package dispatcher

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
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

// MemoryDedup is a bounded in-process Deduper: at most max keys; the oldest
// are forgotten first.
type MemoryDedup struct {
	mu       sync.Mutex
	ttl      time.Duration
	leaseTTL time.Duration
	max      int
	m        map[string]memEntry
	order    []string // insertion order, a ring of at most max live keys
	now      func() time.Time
}

type memEntry struct {
	value   string
	expires time.Time
}

// NewMemoryDedup remembers up to max keys (default 100000) for ttl.
func NewMemoryDedup(max int, ttl, leaseTTL time.Duration) *MemoryDedup {
	if max <= 0 {
		max = 100000
	}
	return &MemoryDedup{ttl: ttl, leaseTTL: leaseTTL, max: max, m: map[string]memEntry{}, now: time.Now}
}

// Claim implements Deduper.
func (d *MemoryDedup) Claim(_ context.Context, keys []string, lease string) ([]ClaimState, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	out := make([]ClaimState, len(keys))
	for i, k := range keys {
		e, ok := d.m[k]
		switch {
		case ok && now.Before(e.expires) && e.value == doneValue:
			out[i] = Done
		case ok && now.Before(e.expires):
			out[i] = InFlight
		default:
			d.put(k, memEntry{value: lease, expires: now.Add(d.leaseTTL)})
			out[i] = Claimed
		}
	}
	return out, nil
}

// Done implements Deduper.
func (d *MemoryDedup) Done(_ context.Context, keys []string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	exp := d.now().Add(d.ttl)
	for _, k := range keys {
		d.put(k, memEntry{value: doneValue, expires: exp})
	}
	return nil
}

// Release implements Deduper.
func (d *MemoryDedup) Release(_ context.Context, keys []string, lease string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, k := range keys {
		if e, ok := d.m[k]; ok && e.value == lease {
			delete(d.m, k)
		}
	}
	return nil
}

func (d *MemoryDedup) put(k string, e memEntry) {
	if _, ok := d.m[k]; !ok {
		d.order = append(d.order, k)
		for len(d.m) >= d.max && len(d.order) > 0 {
			old := d.order[0]
			d.order = d.order[1:]
			if old != k {
				delete(d.m, old)
			}
		}
		if len(d.order) > 2*d.max { // compact keys deleted by Release
			live := d.order[:0]
			for _, o := range d.order {
				if _, ok := d.m[o]; ok || o == k {
					live = append(live, o)
				}
			}
			d.order = live
		}
	}
	d.m[k] = e
}
