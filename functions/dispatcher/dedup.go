package dispatcher

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math"
	"strings"
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
// A crashed holder's lease expires by itself; a RedisDedup also takes back
// the leases of holders it knows to be dead (see Owner).
type Deduper interface {
	Claim(ctx context.Context, keys []string, lease string) ([]ClaimState, error)
	Done(ctx context.Context, keys []string) error
	Release(ctx context.Context, keys []string, lease string) error
}

// Owner is a deliverer whose leases can be taken back once it is known to
// be dead rather than when they expire: an `llm-proxy dispatch` consumer.
// Name is its consumer name, the same across its restarts; Instance is one
// run of it. Its leases read lease:<random>/<instance>/<name>; leases of a
// dispatcher without an Owner read lease:<random> and only expire.
//
// A RedisDedup gives a claimer the keys leased by a former run of its own
// name at once (a consumer name is one process at a time: two running
// consumers of one name in a group would share its pending entries too),
// and, when it tracks owners (TrackOwners), the keys of an owner whose run
// stopped renewing its liveness key.
type Owner struct {
	Name     string
	Instance string
}

// NewOwner is a new run of the deliverer called name.
func NewOwner(name string) Owner { return Owner{Name: name, Instance: randomHex()} }

// lease is a new lease value naming o (anonymous for the zero Owner).
func (o Owner) lease() string {
	if o.Name == "" {
		return "lease:" + randomHex()
	}
	return "lease:" + randomHex() + "/" + o.Instance + "/" + o.Name
}

// leaseOwner is the Owner a lease value names; false for an anonymous
// lease or another value.
func leaseOwner(v string) (Owner, bool) {
	rest, ok := strings.CutPrefix(v, "lease:")
	if !ok {
		return Owner{}, false
	}
	if _, rest, ok = strings.Cut(rest, "/"); !ok {
		return Owner{}, false
	}
	inst, name, ok := strings.Cut(rest, "/")
	if !ok || inst == "" || name == "" {
		return Owner{}, false
	}
	return Owner{Name: name, Instance: inst}, true
}

func randomHex() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

const doneValue = "done"

// RedisDedup keeps dedup state in Redis under a prefix: SET NX with a lease
// TTL to claim, SET with the dedup TTL once delivered.
type RedisDedup struct {
	rdb      redis.UniversalClient
	prefix   string
	ttl      time.Duration
	leaseTTL time.Duration
	owners   string        // liveness keys' prefix; "": owners not tracked
	ownerTTL time.Duration // a liveness key's TTL
}

// NewRedisDedup stores keys as <prefix><key>; delivered keys live for ttl, a
// claim lease for leaseTTL (it should exceed one backend delivery).
func NewRedisDedup(rdb redis.UniversalClient, prefix string, ttl, leaseTTL time.Duration) *RedisDedup {
	return &RedisDedup{rdb: rdb, prefix: prefix, ttl: ttl, leaseTTL: leaseTTL}
}

// TrackOwners makes d take back the leases of an Owner whose liveness key,
// <prefix><name>, no longer holds its instance: each running Owner renews
// its key with KeepAlive, for ttl. It returns d.
func (d *RedisDedup) TrackOwners(prefix string, ttl time.Duration) *RedisDedup {
	d.owners, d.ownerTTL = prefix, ttl
	return d
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
	if n == 0 {
		return out, nil
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return nil, fmt.Errorf("dedup lookup: %w", err)
	}
	held := map[int]string{} // leased by someone else: the lease
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
			held[i] = v
		}
	}
	if len(held) > 0 {
		if err := d.takeBack(ctx, keys, lease, held, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// takeBack claims (out[i] = Claimed) the keys of held whose lease belongs
// to a dead Owner: a former run of the claimer's own name, or, when owners
// are tracked, an owner whose liveness key no longer names that run.
func (d *RedisDedup) takeBack(ctx context.Context, keys []string, lease string, held map[int]string, out []ClaimState) error {
	me, named := leaseOwner(lease)
	var take, ask []int
	for i, v := range held {
		o, ok := leaseOwner(v)
		switch {
		case !ok || o.Instance == me.Instance:
			// anonymous (it expires), or this very run's
		case named && o.Name == me.Name:
			take = append(take, i)
		case d.owners != "":
			ask = append(ask, i)
		}
	}
	if len(ask) > 0 {
		alive := map[string]*redis.StringCmd{}
		pipe := d.rdb.Pipeline()
		for _, i := range ask {
			o, _ := leaseOwner(held[i])
			if alive[o.Name] == nil {
				alive[o.Name] = pipe.Get(ctx, d.owners+o.Name)
			}
		}
		if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
			return fmt.Errorf("dedup: look up lease owners: %w", err)
		}
		for _, i := range ask {
			o, _ := leaseOwner(held[i])
			if alive[o.Name].Val() != o.Instance { // expired, or renewed by another run
				take = append(take, i)
			}
		}
	}
	for _, i := range take {
		ok, err := takeBackScript.Run(ctx, d.rdb, []string{d.prefix + keys[i]}, held[i], lease, d.leaseTTL.Milliseconds()).Bool()
		if err != nil && err != redis.Nil {
			return fmt.Errorf("dedup: take back a lease: %w", err)
		}
		if ok {
			out[i] = Claimed
		} // else it changed meanwhile (done, or taken by another): still in flight
	}
	return nil
}

// takeBackScript replaces the lease ARGV[1] by ARGV[2] for ARGV[3] ms.
var takeBackScript = redis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 end return 0`)

// KeepAlive renews o's liveness key (see TrackOwners) now and then, in the
// background, every third of its TTL, until stop is called (not when ctx
// ends: a draining dispatcher still holds leases), which deletes it (a
// stopped run holds nothing). It logs, as an error, another run
// renewing the same key: two running dispatchers share a consumer name. It
// does nothing unless d tracks owners.
func (d *RedisDedup) KeepAlive(ctx context.Context, o Owner, log *slog.Logger) (stop func()) {
	if d.owners == "" {
		return func() {}
	}
	key := d.owners + o.Name
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx)) // renewed until stop, through a drain
	renew := func(first bool) {
		prev, err := d.rdb.SetArgs(ctx, key, o.Instance, redis.SetArgs{TTL: d.ownerTTL, Get: true}).Result()
		switch {
		case ctx.Err() != nil:
		case err != nil && err != redis.Nil:
			log.Warn("renew the dispatcher's liveness", "consumer", o.Name, "error", err)
		case first && prev != "":
			log.Info("a former run of this consumer may have left leases: taking them back", "consumer", o.Name)
		case !first && prev != o.Instance:
			log.Error("another running dispatcher uses this consumer name; names must be unique in a group", "consumer", o.Name)
		}
	}
	renew(true)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(d.ownerTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				renew(false)
			}
		}
	}()
	return func() {
		cancel()
		<-done
		_ = releaseScript.Run(context.WithoutCancel(ctx), d.rdb, []string{key}, o.Instance).Err()
	}
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
