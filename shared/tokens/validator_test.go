package tokens

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llm-proxy/llm-proxy/internal/testenv"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/secrets"
)

// fakeStore is an in-memory Lookup. A lookup reads the state when it is
// called; with gate set, it then waits for the gate before answering (so a
// test can change the state while a lookup is in flight).
type fakeStore struct {
	mu       sync.Mutex
	tokens   map[string]llmproxy.Token // by hash
	projects map[string]llmproxy.Project
	err      error
	gate     chan struct{}
	started  chan struct{} // receives once per lookup when gate is set

	tokenCalls, projectCalls atomic.Int64
}

func newFakeStore() *fakeStore {
	return &fakeStore{tokens: map[string]llmproxy.Token{}, projects: map[string]llmproxy.Project{}}
}

func (f *fakeStore) GetTokenByHash(ctx context.Context, hash string) (llmproxy.Token, error) {
	f.tokenCalls.Add(1)
	f.mu.Lock()
	t, ok := f.tokens[hash]
	err, gate, started := f.err, f.gate, f.started
	f.mu.Unlock()
	if gate != nil {
		if started != nil {
			started <- struct{}{}
		}
		select {
		case <-gate:
		case <-ctx.Done():
			return llmproxy.Token{}, fmt.Errorf("get token: %w", ctx.Err())
		}
	}
	if err != nil {
		return llmproxy.Token{}, err
	}
	if !ok {
		return llmproxy.Token{}, fmt.Errorf("token: %w", llmproxy.ErrNotFound)
	}
	return t, nil
}

func (f *fakeStore) GetProject(_ context.Context, id string) (llmproxy.Project, error) {
	f.projectCalls.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return llmproxy.Project{}, f.err
	}
	p, ok := f.projects[id]
	if !ok {
		return llmproxy.Project{}, fmt.Errorf("project: %w", llmproxy.ErrNotFound)
	}
	return p, nil
}

func (f *fakeStore) calls() int64 { return f.tokenCalls.Load() + f.projectCalls.Load() }

func (f *fakeStore) setErr(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

func (f *fakeStore) addProject(t testing.TB, kr *secrets.Keyring, id, upstreamKey string) {
	t.Helper()
	ct, err := kr.Encrypt(upstreamKey)
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.projects[id] = llmproxy.Project{ID: id, Name: id, APIKeyEncrypted: ct, APIKeyHint: secrets.MaskAPIKey(upstreamKey), IsActive: true}
	f.mu.Unlock()
}

// addToken creates a token of project pid, hashed with kr, and returns its
// plaintext.
func (f *fakeStore) addToken(t testing.TB, kr *secrets.Keyring, id, pid string, expires *time.Time) string {
	t.Helper()
	plain := mustGenerate(t)
	f.mu.Lock()
	f.tokens[kr.HashToken(plain)] = llmproxy.Token{ID: id, Hash: kr.HashToken(plain), Hint: Hint(plain), ProjectID: pid, IsActive: true, ExpiresAt: expires}
	f.mu.Unlock()
	return plain
}

func (f *fakeStore) updateToken(id string, fn func(*llmproxy.Token)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for h, t := range f.tokens {
		if t.ID == id {
			fn(&t)
			f.tokens[h] = t
		}
	}
}

func (f *fakeStore) updateProject(id string, fn func(*llmproxy.Project)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.projects[id]
	fn(&p)
	f.projects[id] = p
}

func newKeyring(t testing.TB, previous ...string) (*secrets.Keyring, string) {
	t.Helper()
	k, err := secrets.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	kr, err := secrets.NewKeyring(k, previous)
	if err != nil {
		t.Fatal(err)
	}
	return kr, k
}

type fixture struct {
	store *fakeStore
	kr    *secrets.Keyring
	clock *testenv.Clock
	v     *Validator
}

func newFixture(t testing.TB, opts ValidatorOptions) *fixture {
	t.Helper()
	kr, _ := newKeyring(t)
	c := testenv.NewClock(time.Time{})
	if opts.Now == nil {
		opts.Now = c.Now
	}
	st := newFakeStore()
	st.addProject(t, kr, "p1", "sk-upstream-one-0123456789")
	st.addProject(t, kr, "p2", "sk-upstream-two-0123456789")
	return &fixture{store: st, kr: kr, clock: c, v: NewValidator(st, kr, opts)}
}

func wantCode(t testing.TB, err error, kind error, code string) {
	t.Helper()
	var e *llmproxy.Error
	if !errors.As(err, &e) || !errors.Is(err, kind) || e.Code != code {
		t.Fatalf("err = %v, want *llmproxy.Error kind %v code %s", err, kind, code)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	f := newFixture(t, ValidatorOptions{})
	now := f.clock.Now()
	past, future := now.Add(-time.Minute), now.Add(time.Hour)

	valid := f.store.addToken(t, f.kr, "t-valid", "p1", &future)
	noExpiry := f.store.addToken(t, f.kr, "t-noexp", "p1", nil)
	revoked := f.store.addToken(t, f.kr, "t-revoked", "p1", &future)
	f.store.updateToken("t-revoked", func(t *llmproxy.Token) { t.IsActive = false })
	expired := f.store.addToken(t, f.kr, "t-expired", "p1", &past)
	inactive := f.store.addToken(t, f.kr, "t-inactive-project", "p2", nil)
	f.store.updateProject("p2", func(p *llmproxy.Project) { p.IsActive = false })
	exhausted := f.store.addToken(t, f.kr, "t-exhausted", "p1", nil)
	f.store.updateToken("t-exhausted", func(t *llmproxy.Token) { t.MaxRequests = new(int64(3)); t.RequestCount = 3 })
	unknown := mustGenerate(t)
	malformed := valid[:Length-1] + "!"

	tests := []struct {
		name      string
		token     string
		kind      error
		code      string
		wantToken string
	}{
		{"valid", valid, nil, "", "t-valid"},
		{"no expiry", noExpiry, nil, "", "t-noexp"},
		{"quota is the limiter's job", exhausted, nil, "", "t-exhausted"},
		{"malformed", malformed, llmproxy.ErrUnauthorized, llmproxy.CodeInvalidToken, ""},
		{"empty", "", llmproxy.ErrUnauthorized, llmproxy.CodeInvalidToken, ""},
		{"unknown", unknown, llmproxy.ErrUnauthorized, llmproxy.CodeTokenNotFound, ""},
		{"revoked", revoked, llmproxy.ErrUnauthorized, llmproxy.CodeTokenRevoked, "t-revoked"},
		{"expired", expired, llmproxy.ErrUnauthorized, llmproxy.CodeTokenExpired, "t-expired"},
		{"inactive project", inactive, llmproxy.ErrForbidden, llmproxy.CodeProjectInactive, "t-inactive-project"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Twice: from the store, then from the cache.
			for round := range 2 {
				before := f.store.calls()
				auth, err := f.v.Validate(context.Background(), tt.token)
				if tt.kind == nil {
					if err != nil {
						t.Fatalf("round %d: %v", round, err)
					}
					if auth.Token.ID != tt.wantToken || auth.Project.ID != "p1" || auth.UpstreamKey != "sk-upstream-one-0123456789" {
						t.Fatalf("round %d: auth = %+v", round, auth)
					}
				} else {
					wantCode(t, err, tt.kind, tt.code)
					// A known token's refusal carries its Auth for attribution;
					// an unknown or malformed one carries none.
					known := tt.code == llmproxy.CodeTokenRevoked || tt.code == llmproxy.CodeTokenExpired || tt.code == llmproxy.CodeProjectInactive
					if known != (auth != nil) {
						t.Fatalf("round %d: auth = %v with %s, want attribution only for known tokens", round, auth, tt.code)
					}
					if known && auth.Token.ID != tt.wantToken {
						t.Fatalf("round %d: attributed to %q, want %q", round, auth.Token.ID, tt.wantToken)
					}
				}
				if round == 1 && f.store.calls() != before {
					t.Fatalf("second validation did %d lookups, want 0 (cached)", f.store.calls()-before)
				}
				if tt.code == llmproxy.CodeInvalidToken && f.store.calls() != before {
					t.Fatal("a malformed token caused a lookup")
				}
			}
		})
	}
	// Quota fields are exposed for the limiter.
	auth, err := f.v.Validate(context.Background(), exhausted)
	if err != nil || auth.Token.MaxRequests == nil || *auth.Token.MaxRequests != 3 || auth.Token.RequestCount != 3 {
		t.Fatalf("exhausted token auth = %+v, %v", auth, err)
	}
}

func TestValidateMessagesAreClientSafe(t *testing.T) {
	t.Parallel()
	want := map[string]string{
		llmproxy.CodeTokenNotFound:   "token not found",
		llmproxy.CodeTokenRevoked:    "token has been revoked",
		llmproxy.CodeTokenExpired:    "token has expired",
		llmproxy.CodeProjectInactive: "project is inactive",
	}
	for _, e := range []*llmproxy.Error{errTokenNotFound, errTokenRevoked, errTokenExpired, errProjectInactive} {
		if llmproxy.ErrorMessage(e) != want[e.Code] {
			t.Errorf("%s: message %q", e.Code, llmproxy.ErrorMessage(e))
		}
	}
}

func TestValidateStoreFailureIs503AndNotCached(t *testing.T) {
	t.Parallel()
	f := newFixture(t, ValidatorOptions{})
	tok := f.store.addToken(t, f.kr, "t1", "p1", nil)
	unknown := mustGenerate(t)
	f.store.setErr(fmt.Errorf("dial tcp 10.0.0.1:5432: connection refused: %w", llmproxy.ErrUnavailable))

	for _, plain := range []string{tok, unknown} {
		for range 2 {
			before := f.store.calls()
			_, err := f.v.Validate(context.Background(), plain)
			wantCode(t, err, llmproxy.ErrUnavailable, llmproxy.CodeUnavailable)
			if errors.Is(err, llmproxy.ErrUnauthorized) {
				t.Fatal("store failure reported as unauthorized")
			}
			if llmproxy.ErrorMessage(err) != "service temporarily unavailable" {
				t.Fatalf("message leaks internals: %q", llmproxy.ErrorMessage(err))
			}
			if f.store.calls() == before {
				t.Fatal("a failure was cached")
			}
		}
	}

	f.store.setErr(nil)
	if _, err := f.v.Validate(context.Background(), tok); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	_, err := f.v.Validate(context.Background(), unknown)
	wantCode(t, err, llmproxy.ErrUnauthorized, llmproxy.CodeTokenNotFound)
}

func TestValidateUndecryptableKeyIs503(t *testing.T) {
	t.Parallel()
	f := newFixture(t, ValidatorOptions{})
	tok := f.store.addToken(t, f.kr, "t1", "p1", nil)
	other, _ := newKeyring(t)
	ct, _ := other.Encrypt("sk-other")
	f.store.updateProject("p1", func(p *llmproxy.Project) { p.APIKeyEncrypted = ct })
	for range 2 {
		before := f.store.calls()
		_, err := f.v.Validate(context.Background(), tok)
		wantCode(t, err, llmproxy.ErrUnavailable, CodeUpstreamAuthError)
		if f.store.calls() == before {
			t.Fatal("failure was cached")
		}
	}
}

func TestValidateTTLsAndExpiryOnHits(t *testing.T) {
	t.Parallel()
	f := newFixture(t, ValidatorOptions{PositiveTTL: 30 * time.Second, NegativeTTL: 5 * time.Second})
	ctx := context.Background()
	expires := f.clock.Now().Add(10 * time.Second)
	tok := f.store.addToken(t, f.kr, "t1", "p1", &expires)
	long := f.store.addToken(t, f.kr, "t2", "p1", nil)
	unknown := mustGenerate(t)

	mustValid := func(plain string) {
		t.Helper()
		if _, err := f.v.Validate(ctx, plain); err != nil {
			t.Fatal(err)
		}
	}
	mustValid(tok)
	mustValid(long)
	_, err := f.v.Validate(ctx, unknown)
	wantCode(t, err, llmproxy.ErrUnauthorized, llmproxy.CodeTokenNotFound)
	calls := f.store.calls()

	// 4s: everything cached.
	f.clock.Advance(4 * time.Second)
	mustValid(tok)
	_, _ = f.v.Validate(ctx, unknown)
	if f.store.calls() != calls {
		t.Fatal("lookup within the TTLs")
	}

	// 6s: the negative entry is gone, the positive ones stay.
	f.clock.Advance(2 * time.Second)
	_, err = f.v.Validate(ctx, unknown)
	wantCode(t, err, llmproxy.ErrUnauthorized, llmproxy.CodeTokenNotFound)
	if f.store.calls() == calls {
		t.Fatal("negative entry outlived NegativeTTL")
	}
	calls = f.store.calls()

	// 11s: the token expired while cached; the hit notices without a lookup.
	f.clock.Advance(5 * time.Second)
	_, err = f.v.Validate(ctx, tok)
	wantCode(t, err, llmproxy.ErrUnauthorized, llmproxy.CodeTokenExpired)
	if f.store.calls() != calls {
		t.Fatal("expiry check did a lookup")
	}

	// 31s: the positive entry is gone.
	f.clock.Advance(20 * time.Second)
	mustValid(long)
	if f.store.calls() == calls {
		t.Fatal("positive entry outlived PositiveTTL")
	}
}

func TestInvalidation(t *testing.T) {
	t.Parallel()
	f := newFixture(t, ValidatorOptions{})
	ctx := context.Background()
	a := f.store.addToken(t, f.kr, "ta", "p1", nil)
	b := f.store.addToken(t, f.kr, "tb", "p1", nil)
	c := f.store.addToken(t, f.kr, "tc", "p2", nil)
	for _, p := range []string{a, b, c} {
		if _, err := f.v.Validate(ctx, p); err != nil {
			t.Fatal(err)
		}
	}

	// Revoked in the store: the cache still says valid until invalidated.
	f.store.updateToken("ta", func(t *llmproxy.Token) { t.IsActive = false })
	if _, err := f.v.Validate(ctx, a); err != nil {
		t.Fatalf("expected the cached answer before invalidation: %v", err)
	}
	f.v.InvalidateToken("ta")
	_, err := f.v.Validate(ctx, a)
	wantCode(t, err, llmproxy.ErrUnauthorized, llmproxy.CodeTokenRevoked)

	// Project deactivated: every token of it, and only those.
	f.store.updateProject("p1", func(p *llmproxy.Project) { p.IsActive = false })
	f.v.InvalidateProject("p1")
	_, err = f.v.Validate(ctx, b)
	wantCode(t, err, llmproxy.ErrForbidden, llmproxy.CodeProjectInactive)
	before := f.store.calls()
	if _, err := f.v.Validate(ctx, c); err != nil {
		t.Fatal(err)
	}
	if f.store.calls() != before {
		t.Fatal("invalidating p1 evicted a token of p2")
	}

	// Reactivation is seen after invalidation too.
	f.store.updateProject("p1", func(p *llmproxy.Project) { p.IsActive = true })
	f.store.updateToken("ta", func(t *llmproxy.Token) { t.IsActive = true })
	f.v.InvalidateProject("p1")
	for _, p := range []string{a, b} {
		if _, err := f.v.Validate(ctx, p); err != nil {
			t.Fatalf("after reactivation: %v", err)
		}
	}

	f.v.Flush()
	if st := f.v.Stats(); st.Entries != 0 {
		t.Fatalf("entries after Flush = %d", st.Entries)
	}
	before = f.store.calls()
	if _, err := f.v.Validate(ctx, c); err != nil || f.store.calls() == before {
		t.Fatalf("after Flush: err %v, lookups %d", err, f.store.calls()-before)
	}
}

func TestInvalidationDuringLookupIsNotUndone(t *testing.T) {
	t.Parallel()
	f := newFixture(t, ValidatorOptions{})
	ctx := context.Background()
	tok := f.store.addToken(t, f.kr, "t1", "p1", nil)
	gate, started := make(chan struct{}), make(chan struct{}, 1)
	f.store.mu.Lock()
	f.store.gate, f.store.started = gate, started
	f.store.mu.Unlock()

	done := make(chan error, 1)
	go func() {
		_, err := f.v.Validate(ctx, tok)
		done <- err
	}()
	<-started // the lookup has read the token while it was active
	f.store.updateToken("t1", func(t *llmproxy.Token) { t.IsActive = false })
	f.v.InvalidateToken("t1")
	f.store.mu.Lock()
	f.store.gate, f.store.started = nil, nil
	f.store.mu.Unlock()
	close(gate)
	if err := <-done; err != nil {
		t.Fatalf("in-flight validation: %v", err) // it read the old state: fine
	}
	// The stale result must not have been cached.
	_, err := f.v.Validate(ctx, tok)
	wantCode(t, err, llmproxy.ErrUnauthorized, llmproxy.CodeTokenRevoked)
}

func TestConcurrentMissesCollapse(t *testing.T) {
	t.Parallel()
	f := newFixture(t, ValidatorOptions{})
	tok := f.store.addToken(t, f.kr, "t1", "p1", nil)
	gate, started := make(chan struct{}), make(chan struct{}, 100)
	f.store.mu.Lock()
	f.store.gate, f.store.started = gate, started
	f.store.mu.Unlock()

	const n = 20
	var wg sync.WaitGroup
	results := make(chan *Auth, n)
	for range n {
		wg.Go(func() {
			auth, err := f.v.Validate(context.Background(), tok)
			if err != nil {
				t.Error(err)
			}
			results <- auth
		})
	}
	<-started
	deadline := time.Now().Add(10 * time.Second)
	for f.v.joins.Load() < n-1 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d callers joined the lookup", f.v.joins.Load())
		}
		time.Sleep(time.Millisecond)
	}
	close(gate)
	wg.Wait()
	close(results)
	var first *Auth
	for a := range results {
		if first == nil {
			first = a
		}
		if a != first {
			t.Fatal("callers got different *Auth values")
		}
	}
	if got := f.store.tokenCalls.Load(); got != 1 {
		t.Fatalf("token lookups = %d, want 1", got)
	}
}

func TestCancelledLeaderDoesNotFailFollowers(t *testing.T) {
	t.Parallel()
	f := newFixture(t, ValidatorOptions{})
	tok := f.store.addToken(t, f.kr, "t1", "p1", nil)
	gate, started := make(chan struct{}), make(chan struct{}, 100)
	f.store.mu.Lock()
	f.store.gate, f.store.started = gate, started
	f.store.mu.Unlock()

	leaderCtx, cancel := context.WithCancel(context.Background())
	leaderErr := make(chan error, 1)
	go func() {
		_, err := f.v.Validate(leaderCtx, tok)
		leaderErr <- err
	}()
	<-started
	followerErr := make(chan error, 1)
	go func() {
		_, err := f.v.Validate(context.Background(), tok)
		followerErr <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for f.v.joins.Load() < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the follower did not join the lookup")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	err := <-leaderErr
	wantCode(t, err, llmproxy.ErrUnavailable, llmproxy.CodeUnavailable)
	// The follower retries as the new leader.
	<-started
	close(gate)
	if err := <-followerErr; err != nil {
		t.Fatalf("follower: %v", err)
	}
}

func TestKeyRotationLookup(t *testing.T) {
	t.Parallel()
	oldKR, oldKey := newKeyring(t)
	st := newFakeStore()
	st.addProject(t, oldKR, "p1", "sk-upstream")
	tok := st.addToken(t, oldKR, "t1", "p1", nil)

	newKR, _ := newKeyring(t, oldKey)
	v := NewValidator(st, newKR, ValidatorOptions{})
	auth, err := v.Validate(context.Background(), tok)
	if err != nil || auth.UpstreamKey != "sk-upstream" {
		t.Fatalf("token from before the rotation: %+v, %v", auth, err)
	}
	if got := st.tokenCalls.Load(); got != 2 {
		t.Fatalf("token lookups = %d, want 2 (current hash, then previous)", got)
	}

	// Once cached, no more lookups.
	before := st.calls()
	if _, err := v.Validate(context.Background(), tok); err != nil || st.calls() != before {
		t.Fatalf("cached: %v", err)
	}
}

func TestCacheIsBounded(t *testing.T) {
	t.Parallel()
	f := newFixture(t, ValidatorOptions{MaxEntries: 64})
	ctx := context.Background()
	var plains []string
	for i := range 300 {
		plains = append(plains, f.store.addToken(t, f.kr, fmt.Sprintf("t%d", i), "p1", nil))
	}
	for _, p := range plains {
		if _, err := f.v.Validate(ctx, p); err != nil {
			t.Fatal(err)
		}
		_, _ = f.v.Validate(ctx, mustGenerate(t)) // negative entries count too
	}
	if st := f.v.Stats(); st.Entries > 64 || st.Entries < 32 {
		t.Fatalf("entries = %d, want between 32 and 64", st.Entries)
	}
	// Indexes shrink with the entries.
	var byToken, byProject int
	for i := range f.v.shards {
		s := &f.v.shards[i]
		s.mu.RLock()
		byToken += len(s.byToken)
		for _, set := range s.byProject {
			byProject += len(set)
		}
		if s.order.Len() != len(s.entries) {
			t.Errorf("shard %d: order %d, entries %d", i, s.order.Len(), len(s.entries))
		}
		s.mu.RUnlock()
	}
	if byToken > 64 || byProject != byToken {
		t.Fatalf("index sizes: byToken %d, byProject %d", byToken, byProject)
	}
	// The most recent token is still cached.
	before := f.store.calls()
	if _, err := f.v.Validate(ctx, plains[len(plains)-1]); err != nil || f.store.calls() != before {
		t.Fatalf("latest entry was evicted (err %v)", err)
	}
}

func TestCachedValidationDoesNotAllocate(t *testing.T) {
	f := newFixture(t, ValidatorOptions{})
	ctx := context.Background()
	valid := f.store.addToken(t, f.kr, "t1", "p1", nil)
	revoked := f.store.addToken(t, f.kr, "t2", "p1", nil)
	f.store.updateToken("t2", func(t *llmproxy.Token) { t.IsActive = false })
	unknown := mustGenerate(t)
	for _, p := range []string{valid, revoked, unknown} {
		_, _ = f.v.Validate(ctx, p)
		if n := testing.AllocsPerRun(100, func() { _, _ = f.v.Validate(ctx, p) }); n != 0 {
			t.Errorf("cached validation allocates %v times", n)
		}
	}
}

func BenchmarkValidateCached(b *testing.B) {
	f := newFixture(b, ValidatorOptions{Now: time.Now})
	ctx := context.Background()
	tok := f.store.addToken(b, f.kr, "t1", "p1", nil)
	if _, err := f.v.Validate(ctx, tok); err != nil {
		b.Fatal(err)
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := f.v.Validate(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := f.v.Validate(ctx, tok); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

func BenchmarkValidateRejected(b *testing.B) {
	f := newFixture(b, ValidatorOptions{Now: time.Now})
	ctx := context.Background()
	unknown := mustGenerate(b)
	malformed := unknown[:Length-1] + "!"
	b.Run("malformed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = f.v.Validate(ctx, malformed)
		}
	})
	b.Run("unknown_cached", func(b *testing.B) {
		_, _ = f.v.Validate(ctx, unknown)
		b.ReportAllocs()
		for b.Loop() {
			_, _ = f.v.Validate(ctx, unknown)
		}
	})
}
