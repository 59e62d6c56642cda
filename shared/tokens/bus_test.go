package tokens

import (
	"bufio"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llm-proxy/llm-proxy/internal/testenv"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/secrets"
)

var (
	_ Invalidator = (*LocalBus)(nil)
	_ Invalidator = (*RedisBus)(nil)
)

// waitRefused polls Validate until it fails with code, within deadline.
func waitRefused(t *testing.T, v *Validator, plain, code string, deadline time.Duration) {
	t.Helper()
	end := time.Now().Add(deadline)
	for {
		_, err := v.Validate(context.Background(), plain)
		if err != nil && llmproxy.ErrorCode(err) == code {
			return
		}
		if err != nil && !errors.Is(err, llmproxy.ErrUnauthorized) && !errors.Is(err, llmproxy.ErrForbidden) {
			t.Fatalf("unexpected error: %v", err)
		}
		if time.Now().After(end) {
			t.Fatalf("still accepted (err %v) after %v; want %s", err, deadline, code)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func mustValidate(t *testing.T, v *Validator, plain string) {
	t.Helper()
	if _, err := v.Validate(context.Background(), plain); err != nil {
		t.Fatal(err)
	}
}

// mustCached validates and checks that no lookup happened.
func mustCached(t *testing.T, st *fakeStore, v *Validator, plain string) {
	t.Helper()
	before := st.calls()
	mustValidate(t, v, plain)
	if st.calls() != before {
		t.Fatal("validation was not served from the cache")
	}
}

func TestLocalBus(t *testing.T) {
	t.Parallel()
	kr, _ := newKeyring(t)
	st := newFakeStore()
	st.addProject(t, kr, "p1", "sk-up")
	tok := st.addToken(t, kr, "t1", "p1", nil)
	tok2 := st.addToken(t, kr, "t2", "p1", nil)
	v1 := NewValidator(st, kr, ValidatorOptions{})
	v2 := NewValidator(st, kr, ValidatorOptions{})
	bus := NewLocalBus()
	bus.Subscribe(v1)
	bus.Subscribe(v2)
	for _, v := range []*Validator{v1, v2} {
		mustValidate(t, v, tok)
		mustValidate(t, v, tok2)
		mustCached(t, st, v, tok)
	}
	st.updateToken("t1", func(t *llmproxy.Token) { t.IsActive = false })
	if err := bus.InvalidateToken(context.Background(), "t1"); err != nil {
		t.Fatal(err)
	}
	for _, v := range []*Validator{v1, v2} {
		_, err := v.Validate(context.Background(), tok)
		wantCode(t, err, llmproxy.ErrUnauthorized, llmproxy.CodeTokenRevoked)
	}
	st.updateProject("p1", func(p *llmproxy.Project) { p.IsActive = false })
	if err := bus.InvalidateProject(context.Background(), "p1"); err != nil {
		t.Fatal(err)
	}
	for _, v := range []*Validator{v1, v2} {
		_, err := v.Validate(context.Background(), tok2)
		wantCode(t, err, llmproxy.ErrForbidden, llmproxy.CodeProjectInactive)
	}
}

// instance is one proxy instance: its own Redis client, bus and validator,
// over the shared store.
type instance struct {
	client *redis.Client
	bus    *RedisBus
	v      *Validator
}

func startInstance(t *testing.T, st *fakeStore, kr *secrets.Keyring, channel, clientName string) *instance {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(), ClientName: clientName})
	t.Cleanup(func() { client.Close() })
	v := NewValidator(st, kr, ValidatorOptions{})
	bus := NewRedisBus(client, channel, nil)
	bus.RetryBackoff = 100 * time.Millisecond
	bus.Subscribe(v)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := bus.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	select {
	case <-bus.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("bus did not subscribe")
	}
	return &instance{client: client, bus: bus, v: v}
}

func TestRedisBusRevocationReachesEveryInstance(t *testing.T) {
	t.Parallel()
	_, prefix := testenv.Redis(t)
	channel := prefix + "tokens:invalidate"
	kr, _ := newKeyring(t)
	st := newFakeStore()
	st.addProject(t, kr, "p1", "sk-up-1")
	st.addProject(t, kr, "p2", "sk-up-2")
	tok := st.addToken(t, kr, "t1", "p1", nil)
	other := st.addToken(t, kr, "t2", "p1", nil)
	p2tok := st.addToken(t, kr, "t3", "p2", nil)

	a := startInstance(t, st, kr, channel, "")
	b := startInstance(t, st, kr, channel, "")
	for _, in := range []*instance{a, b} {
		for _, p := range []string{tok, other, p2tok} {
			mustValidate(t, in.v, p)
			mustCached(t, st, in.v, p)
		}
	}

	// Revoke in the store, then invalidate through instance a's bus (as the
	// management function would): both refuse within a second.
	st.updateToken("t1", func(t *llmproxy.Token) { t.IsActive = false })
	if err := a.bus.InvalidateToken(context.Background(), "t1"); err != nil {
		t.Fatal(err)
	}
	for _, in := range []*instance{a, b} {
		waitRefused(t, in.v, tok, llmproxy.CodeTokenRevoked, time.Second)
	}
	// Only that token was evicted.
	mustCached(t, st, b.v, other)

	// Project deactivation, published from b.
	st.updateProject("p1", func(p *llmproxy.Project) { p.IsActive = false })
	if err := b.bus.InvalidateProject(context.Background(), "p1"); err != nil {
		t.Fatal(err)
	}
	for _, in := range []*instance{a, b} {
		waitRefused(t, in.v, other, llmproxy.CodeProjectInactive, time.Second)
		mustCached(t, st, in.v, p2tok)
	}

	// FlushAll forgets everything everywhere.
	st.updateToken("t3", func(t *llmproxy.Token) { t.IsActive = false })
	if err := a.bus.FlushAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, in := range []*instance{a, b} {
		waitRefused(t, in.v, p2tok, llmproxy.CodeTokenRevoked, time.Second)
	}
}

// TestRedisBusFlushesAfterReconnect kills the subscriber's connection: a
// message published in the gap would be lost, so on resubscription the cache
// is flushed and a revocation that was never announced is seen.
func TestRedisBusFlushesAfterReconnect(t *testing.T) {
	t.Parallel()
	admin, prefix := testenv.Redis(t)
	channel := prefix + "tokens:invalidate"
	name := strings.ReplaceAll(prefix, ":", "-") + "sub"
	kr, _ := newKeyring(t)
	st := newFakeStore()
	st.addProject(t, kr, "p1", "sk-up")
	tok := st.addToken(t, kr, "t1", "p1", nil)
	in := startInstance(t, st, kr, channel, name)
	mustValidate(t, in.v, tok)
	mustCached(t, st, in.v, tok)

	// Revoked, and the announcement is lost.
	st.updateToken("t1", func(t *llmproxy.Token) { t.IsActive = false })
	killed := killClients(t, admin, name)
	if killed == 0 {
		t.Fatal("found no connection to kill")
	}
	waitRefused(t, in.v, tok, llmproxy.CodeTokenRevoked, 10*time.Second)

	// And the new subscription works.
	st.updateToken("t1", func(t *llmproxy.Token) { t.IsActive = true })
	if err := in.bus.InvalidateToken(context.Background(), "t1"); err != nil {
		t.Fatal(err)
	}
	mustValidate(t, in.v, tok)
	st.updateToken("t1", func(t *llmproxy.Token) { t.IsActive = false })
	if err := admin.Publish(context.Background(), channel, "token:t1").Err(); err != nil {
		t.Fatal(err)
	}
	waitRefused(t, in.v, tok, llmproxy.CodeTokenRevoked, 5*time.Second)
}

// killClients kills every Redis connection named name and returns how many.
func killClients(t *testing.T, admin *redis.Client, name string) int {
	t.Helper()
	ctx := context.Background()
	list, err := admin.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	sc := bufio.NewScanner(strings.NewReader(list))
	for sc.Scan() {
		var id, cname string
		for _, f := range strings.Fields(sc.Text()) {
			if v, ok := strings.CutPrefix(f, "id="); ok {
				id = v
			}
			if v, ok := strings.CutPrefix(f, "name="); ok {
				cname = v
			}
		}
		if cname == name && id != "" {
			if err := admin.Do(ctx, "CLIENT", "KILL", "ID", id).Err(); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	return n
}

func TestRedisBusPublishFailureIsUnavailable(t *testing.T) {
	t.Parallel()
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { client.Close() })
	kr, _ := newKeyring(t)
	st := newFakeStore()
	st.addProject(t, kr, "p1", "sk-up")
	tok := st.addToken(t, kr, "t1", "p1", nil)
	v := NewValidator(st, kr, ValidatorOptions{})
	bus := NewRedisBus(client, "x", nil)
	bus.Subscribe(v)
	mustValidate(t, v, tok)
	st.updateToken("t1", func(t *llmproxy.Token) { t.IsActive = false })
	err := bus.InvalidateToken(context.Background(), "t1")
	wantCode(t, err, llmproxy.ErrUnavailable, llmproxy.CodeUnavailable)
	// The local instance was evicted anyway.
	_, err = v.Validate(context.Background(), tok)
	wantCode(t, err, llmproxy.ErrUnauthorized, llmproxy.CodeTokenRevoked)
}
