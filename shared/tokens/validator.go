package tokens

import (
	"container/list"
	"context"
	"crypto/sha256"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/secrets"
)

// Lookup is what the Validator reads from the store (store.Store satisfies
// it). Unknown ids and hashes are errors wrapping llmproxy.ErrNotFound; any
// other error is an infrastructure failure.
type Lookup interface {
	GetTokenByHash(ctx context.Context, hash string) (llmproxy.Token, error)
	GetProject(ctx context.Context, id string) (llmproxy.Project, error)
}

// Auth is the result of a successful validation. The *Auth returned by
// Validate is shared between requests and cache entries: it is read-only.
type Auth struct {
	Token   llmproxy.Token
	Project llmproxy.Project
	// UpstreamKey is the project's decrypted upstream API key (decrypted once
	// per cache fill). Never log it.
	UpstreamKey string
}

// Default cache settings.
const (
	DefaultPositiveTTL = 30 * time.Second
	DefaultNegativeTTL = 5 * time.Second
	DefaultMaxEntries  = 100_000
)

// ValidatorOptions tune the validation cache. Zero values take the defaults.
type ValidatorOptions struct {
	// PositiveTTL bounds how long a looked-up token is served from memory. It
	// is a safety net: revocation and deactivation propagate by invalidation
	// (InvalidateToken, InvalidateProject, a bus). Default 30s.
	PositiveTTL time.Duration
	// NegativeTTL is how long an unknown well-formed token is remembered as
	// unknown, so that floods of made-up tokens cost no lookup. Default 5s.
	NegativeTTL time.Duration
	// MaxEntries bounds the cache; when full, the oldest entries are evicted.
	// Default 100,000.
	MaxEntries int
	// Now is the clock (tests). Default time.Now.
	Now func() time.Time
}

// Client-safe errors of Validate. They are shared values so that a rejection
// from the cache allocates nothing; callers must not modify them.
var (
	errTokenNotFound   = llmproxy.E(llmproxy.ErrUnauthorized, llmproxy.CodeTokenNotFound, "token not found")
	errTokenRevoked    = llmproxy.E(llmproxy.ErrUnauthorized, llmproxy.CodeTokenRevoked, "token has been revoked")
	errTokenExpired    = llmproxy.E(llmproxy.ErrUnauthorized, llmproxy.CodeTokenExpired, "token has expired")
	errProjectInactive = llmproxy.E(llmproxy.ErrForbidden, llmproxy.CodeProjectInactive, "project is inactive")
)

// CodeUpstreamAuthError is the code of the 503 returned when the project's
// upstream key cannot be decrypted (a key missing from the keyring).
const CodeUpstreamAuthError = "upstream_auth_error"

const numShards = 32

// Validator checks tokens on the proxy's request path: format and checksum
// (no lookup), then a bounded in-process cache, then the store. A cached
// validation allocates nothing.
//
// Cached entries are evicted by InvalidateToken, InvalidateProject and Flush
// (called directly or through a LocalBus/RedisBus); the TTLs are a safety net.
// An invalidation that races with a lookup in flight prevents that lookup's
// result from being cached, so a revocation is never undone by a stale fill.
type Validator struct {
	lookup  Lookup
	keyring *secrets.Keyring
	posTTL  time.Duration
	negTTL  time.Duration
	now     func() time.Time

	shardMax int
	shards   [numShards]shard
	// epoch counts invalidations; a fill whose lookup started in an older
	// epoch is not cached.
	epoch atomic.Uint64

	flightMu sync.Mutex
	flights  map[[32]byte]*flight

	hits, misses, lookups atomic.Int64
	joins                 atomic.Int64 // callers that waited for another's lookup
}

type shard struct {
	mu        sync.RWMutex
	entries   map[[32]byte]*entry
	order     list.List // of *entry, oldest first
	byToken   map[string]*entry
	byProject map[string]map[*entry]struct{}
}

type entry struct {
	key     [32]byte
	auth    *Auth // nil: the token is unknown (negative entry)
	expires time.Time
	elem    *list.Element
}

type flight struct {
	done chan struct{}
	auth *Auth
	err  error
	// left: the leading caller's context ended before the lookup did, so
	// err is its own leaving, not the store's answer.
	left bool
}

// NewValidator returns a Validator reading through lookup and hashing with
// keyring.
func NewValidator(lookup Lookup, keyring *secrets.Keyring, opts ValidatorOptions) *Validator {
	if opts.PositiveTTL <= 0 {
		opts.PositiveTTL = DefaultPositiveTTL
	}
	if opts.NegativeTTL <= 0 {
		opts.NegativeTTL = DefaultNegativeTTL
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultMaxEntries
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	v := &Validator{
		lookup:   lookup,
		keyring:  keyring,
		posTTL:   opts.PositiveTTL,
		negTTL:   opts.NegativeTTL,
		now:      opts.Now,
		shardMax: max(1, (opts.MaxEntries+numShards-1)/numShards),
		flights:  map[[32]byte]*flight{},
	}
	for i := range v.shards {
		s := &v.shards[i]
		s.entries = map[[32]byte]*entry{}
		s.byToken = map[string]*entry{}
		s.byProject = map[string]map[*entry]struct{}{}
	}
	return v
}

// Validate authenticates a plaintext token. In order: format and checksum (no
// lookup; 401 invalid_token), the cache, the store (hashes under the current
// and previous keys); then the token must be active (401 token_revoked) and
// unexpired (401 token_expired, checked on every call, cache hits included),
// and its project active (403 project_inactive). An unknown token is 401
// token_not_found and is remembered for NegativeTTL. A store failure is an
// error wrapping llmproxy.ErrUnavailable (503), never a 401, and is not
// cached.
//
// The lifetime quota (MaxRequests) is not checked here: the limiter does it
// atomically. Errors are *llmproxy.Error with client-safe messages. When a
// known token is refused (revoked, expired, inactive project), its *Auth is
// returned alongside the error for attribution only.
func (v *Validator) Validate(ctx context.Context, plaintext string) (*Auth, error) {
	if err := CheckFormat(plaintext); err != nil {
		return nil, err
	}
	k := digest(plaintext)
	now := v.now()
	if auth, ok := v.get(k, now); ok {
		v.hits.Add(1)
		return check(auth, now)
	}
	v.misses.Add(1)
	for attempt := 0; ; attempt++ {
		auth, retry, err := v.load(ctx, k, plaintext)
		if err != nil {
			// The lookup this request joined was led by another request
			// that went away: try again while this one still wants an answer.
			// A store that timed out is an answer (503), not a reason to wait
			// for another deadline.
			if retry && attempt < 3 && ctx.Err() == nil {
				continue
			}
			return nil, err
		}
		return check(auth, v.now())
	}
}

// digest is the cache key of a well-formed token: SHA-256 of the plaintext,
// computed on the stack.
func digest(plaintext string) [32]byte {
	var buf [Length]byte
	copy(buf[:], plaintext)
	return sha256.Sum256(buf[:])
}

// check refuses a revoked or expired token or an inactive project. A known
// token's Auth is returned with the refusal, so the caller can attribute the
// refused request (events, logs); it must not be used to go upstream.
func check(auth *Auth, now time.Time) (*Auth, error) {
	switch {
	case auth == nil:
		return nil, errTokenNotFound
	case !auth.Token.IsActive:
		return auth, errTokenRevoked
	case auth.Token.ExpiresAt != nil && !now.Before(*auth.Token.ExpiresAt):
		return auth, errTokenExpired
	case !auth.Project.IsActive:
		return auth, errProjectInactive
	}
	return auth, nil
}

func (v *Validator) shard(k [32]byte) *shard { return &v.shards[k[0]%numShards] }

func (v *Validator) get(k [32]byte, now time.Time) (*Auth, bool) {
	s := v.shard(k)
	s.mu.RLock()
	e, ok := s.entries[k]
	if !ok || !now.Before(e.expires) {
		s.mu.RUnlock()
		return nil, false
	}
	auth := e.auth
	s.mu.RUnlock()
	return auth, true
}

// load looks the token up once for all concurrent callers with the same key;
// retry reports that the lookup this caller joined failed only because the
// caller leading it went away.
func (v *Validator) load(ctx context.Context, k [32]byte, plaintext string) (auth *Auth, retry bool, err error) {
	v.flightMu.Lock()
	if f, ok := v.flights[k]; ok {
		v.flightMu.Unlock()
		v.joins.Add(1)
		select {
		case <-f.done:
			return f.auth, f.left && isContextErr(f.err), f.err
		case <-ctx.Done():
			return nil, false, unavailable(ctx.Err())
		}
	}
	f := &flight{done: make(chan struct{})}
	v.flights[k] = f
	v.flightMu.Unlock()

	f.auth, f.err = v.fill(ctx, k, plaintext)
	f.left = f.err != nil && ctx.Err() != nil

	v.flightMu.Lock()
	delete(v.flights, k)
	v.flightMu.Unlock()
	close(f.done)
	return f.auth, false, f.err
}

// fill reads the token and its project from the store and caches the result
// unless an invalidation happened meanwhile.
func (v *Validator) fill(ctx context.Context, k [32]byte, plaintext string) (*Auth, error) {
	epoch := v.epoch.Load()
	var (
		tok   llmproxy.Token
		found bool
	)
	for _, h := range v.keyring.HashTokenAll(plaintext) {
		v.lookups.Add(1)
		t, err := v.lookup.GetTokenByHash(ctx, h)
		if err == nil {
			tok, found = t, true
			break
		}
		if !errors.Is(err, llmproxy.ErrNotFound) {
			return nil, unavailable(err)
		}
	}
	if !found {
		v.put(k, nil, v.negTTL, epoch)
		return nil, nil
	}
	v.lookups.Add(1)
	p, err := v.lookup.GetProject(ctx, tok.ProjectID)
	if errors.Is(err, llmproxy.ErrNotFound) {
		// A token whose project is gone cannot be used; not cached, since
		// this is an inconsistency, not a state.
		return nil, llmproxy.Wrap(llmproxy.ErrForbidden, llmproxy.CodeProjectInactive, "project is inactive", err)
	}
	if err != nil {
		return nil, unavailable(err)
	}
	auth := &Auth{Token: tok, Project: p}
	if _, err := check(auth, v.now()); err == nil {
		key, err := v.keyring.Decrypt(p.APIKeyEncrypted)
		if err != nil {
			return nil, llmproxy.Wrap(llmproxy.ErrUnavailable, CodeUpstreamAuthError, "failed to load upstream API key", err)
		}
		auth.UpstreamKey = key
	}
	// A revoked, expired or deactivated token is cached too (without its
	// key), so repeated use of it costs no lookup either.
	v.put(k, auth, v.posTTL, epoch)
	return auth, nil
}

func unavailable(err error) error {
	return llmproxy.Wrap(llmproxy.ErrUnavailable, llmproxy.CodeUnavailable, "service temporarily unavailable", err)
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

func (v *Validator) put(k [32]byte, auth *Auth, ttl time.Duration, epoch uint64) {
	s := v.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	// Checked under the shard lock: an invalidation bumps the epoch before it
	// takes the shard locks to evict, so either it sees this entry or this
	// fill sees its bump.
	if v.epoch.Load() != epoch {
		return
	}
	if old, ok := s.entries[k]; ok {
		s.remove(old)
	}
	for len(s.entries) >= v.shardMax {
		s.remove(s.order.Front().Value.(*entry))
	}
	e := &entry{key: k, auth: auth, expires: v.now().Add(ttl)}
	e.elem = s.order.PushBack(e)
	s.entries[k] = e
	if auth != nil {
		s.byToken[auth.Token.ID] = e
		set := s.byProject[auth.Token.ProjectID]
		if set == nil {
			set = map[*entry]struct{}{}
			s.byProject[auth.Token.ProjectID] = set
		}
		set[e] = struct{}{}
	}
}

// remove deletes e and its index entries; s.mu must be held.
func (s *shard) remove(e *entry) {
	delete(s.entries, e.key)
	s.order.Remove(e.elem)
	if e.auth == nil {
		return
	}
	if s.byToken[e.auth.Token.ID] == e {
		delete(s.byToken, e.auth.Token.ID)
	}
	pid := e.auth.Token.ProjectID
	if set := s.byProject[pid]; set != nil {
		delete(set, e)
		if len(set) == 0 {
			delete(s.byProject, pid)
		}
	}
}

// InvalidateToken evicts the cached validation of the token with this id
// (after a revocation or any change to the token).
func (v *Validator) InvalidateToken(id string) {
	v.epoch.Add(1)
	for i := range v.shards {
		s := &v.shards[i]
		s.mu.Lock()
		if e, ok := s.byToken[id]; ok {
			s.remove(e)
		}
		s.mu.Unlock()
	}
}

// InvalidateProject evicts the cached validations of every token of the
// project (after a deactivation, a key change or a bulk revocation).
func (v *Validator) InvalidateProject(id string) {
	v.epoch.Add(1)
	for i := range v.shards {
		s := &v.shards[i]
		s.mu.Lock()
		for e := range s.byProject[id] {
			s.remove(e)
		}
		s.mu.Unlock()
	}
}

// Flush evicts everything, e.g. when invalidation messages may have been lost.
func (v *Validator) Flush() {
	v.epoch.Add(1)
	for i := range v.shards {
		s := &v.shards[i]
		s.mu.Lock()
		clear(s.entries)
		clear(s.byToken)
		clear(s.byProject)
		s.order.Init()
		s.mu.Unlock()
	}
}

// ValidatorStats are counters for metrics.
type ValidatorStats struct {
	Hits    int64 // validations answered from the cache
	Misses  int64 // validations that needed a lookup (or joined one)
	Lookups int64 // store calls made
	Entries int   // cached entries now
}

// Stats returns the validator's counters.
func (v *Validator) Stats() ValidatorStats {
	st := ValidatorStats{Hits: v.hits.Load(), Misses: v.misses.Load(), Lookups: v.lookups.Load()}
	for i := range v.shards {
		s := &v.shards[i]
		s.mu.RLock()
		st.Entries += len(s.entries)
		s.mu.RUnlock()
	}
	return st
}
