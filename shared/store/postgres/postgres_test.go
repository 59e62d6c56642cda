package postgres_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/llm-proxy/llm-proxy/internal/faultproxy"
	"github.com/llm-proxy/llm-proxy/internal/testenv"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/store"
	"github.com/llm-proxy/llm-proxy/shared/store/migrate"
	"github.com/llm-proxy/llm-proxy/shared/store/postgres"
	"github.com/llm-proxy/llm-proxy/shared/store/storetest"
)

func open(t *testing.T) store.Store {
	t.Helper()
	url := testenv.PostgresURL(t)
	ctx := context.Background()
	testenv.Must(t, migrate.Up(ctx, "postgres", url))
	s, err := postgres.Open(ctx, config.Database{Driver: "postgres", URL: url, PoolSize: 10, ConnMaxLifetime: time.Hour})
	testenv.Must(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestContract(t *testing.T) {
	t.Parallel()
	storetest.Run(t, open)
}

// unreachable returns a URL of a port where nothing listens.
func unreachable(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	testenv.Must(t, err)
	addr := l.Addr().String()
	_ = l.Close()
	return "postgres://postgres@" + addr + "/test?sslmode=disable&connect_timeout=2"
}

func TestOpenDoesNotDial(t *testing.T) {
	t.Parallel()
	s, err := postgres.Open(context.Background(), config.Database{Driver: "postgres", URL: unreachable(t), PoolSize: 4, MaxIdleConns: 2})
	if err != nil {
		t.Fatalf("Open with an unreachable server = %v, want nil (pools dial lazily)", err)
	}
	defer s.Close()
	if n := s.Pool().Stat().TotalConns(); n != 0 {
		t.Fatalf("pool holds %d connections after Open, want 0", n)
	}
}

func TestUnreachableIsUnavailable(t *testing.T) {
	t.Parallel()
	s, err := postgres.Open(context.Background(), config.Database{Driver: "postgres", URL: unreachable(t), PoolSize: 2})
	testenv.Must(t, err)
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	checks := map[string]error{
		"ping": s.Ping(ctx),
	}
	_, checks["get token by hash"] = s.GetTokenByHash(ctx, "h")
	_, checks["create project"] = s.CreateProject(ctx, llmproxy.Project{Name: "x", IsActive: true}, func(error) llmproxy.AuditEvent {
		return llmproxy.AuditEvent{Action: "project.create", Outcome: llmproxy.OutcomeSuccess}
	})
	_, _, checks["list audit"] = s.ListAudit(ctx, store.AuditFilter{})
	for name, err := range checks {
		if !errors.Is(err, llmproxy.ErrUnavailable) || llmproxy.ErrorCode(err) != llmproxy.CodeUnavailable {
			t.Errorf("%s against an unreachable server = %v (code %q), want ErrUnavailable", name, err, llmproxy.ErrorCode(err))
		}
	}
}

func TestInvalidURLDoesNotLeakPassword(t *testing.T) {
	t.Parallel()
	_, err := postgres.Open(context.Background(), config.Database{Driver: "postgres", URL: "postgres://u:s3cret@host:notaport/db"})
	if err == nil {
		t.Fatal("Open with an invalid URL succeeded")
	}
	if contains(err.Error(), "s3cret") {
		t.Fatalf("error %q leaks the password", err)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func TestURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"pgx5://u@h/db?search_path=s": "postgres://u@h/db?search_path=s",
		"pgx://u@h/db":                "postgres://u@h/db",
		"postgres://u@h/db":           "postgres://u@h/db",
	} {
		if got := postgres.URL(in); got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestHungDatabaseIsUnavailableWithinDeadline: PostgreSQL accepting
// connections and never answering fails every call with ErrUnavailable
// within DATABASE_QUERY_TIMEOUT (a write with its failure audit record,
// within twice that), on pooled connections and new ones alike; when it
// answers again, the same store works without a restart.
func TestHungDatabaseIsUnavailableWithinDeadline(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	direct := testenv.PostgresURL(t)
	ctx := context.Background()
	testenv.Must(t, migrate.Up(ctx, "postgres", direct))
	proxy, url := faultproxy.StartURL(t, direct)
	s, err := postgres.Open(ctx, config.Database{Driver: "postgres", URL: url, PoolSize: 4, QueryTimeout: timeout})
	testenv.Must(t, err)
	t.Cleanup(func() { _ = s.Close() })
	p, err := s.CreateProject(ctx, llmproxy.Project{Name: "hung", APIKeyEncrypted: "ct", IsActive: true}, nil)
	testenv.Must(t, err)
	tok, err := s.CreateToken(ctx, llmproxy.Token{Hash: "hash-hung", Hint: "x", ProjectID: p.ID, IsActive: true}, nil)
	testenv.Must(t, err)

	proxy.Hang()
	audited := func(error) llmproxy.AuditEvent {
		return llmproxy.AuditEvent{Action: "project.create", Outcome: llmproxy.OutcomeSuccess}
	}
	for _, tc := range []struct {
		name  string
		bound time.Duration
		call  func(ctx context.Context) error
	}{
		{"get token by hash", timeout, func(ctx context.Context) error { _, err := s.GetTokenByHash(ctx, tok.Hash); return err }},
		{"get project", timeout, func(ctx context.Context) error { _, err := s.GetProject(ctx, p.ID); return err }},
		{"list tokens", timeout, func(ctx context.Context) error { _, _, err := s.ListTokens(ctx, store.TokenFilter{}); return err }},
		{"ping", timeout, s.Ping},
		{"create project, audited", 2 * timeout, func(ctx context.Context) error {
			_, err := s.CreateProject(ctx, llmproxy.Project{Name: "new", APIKeyEncrypted: "ct", IsActive: true}, audited)
			return err
		}},
	} {
		start := time.Now()
		err := tc.call(ctx) // the caller sets no deadline: the store's is the only one
		took := time.Since(start)
		t.Logf("%s: %v", tc.name, took)
		if !errors.Is(err, llmproxy.ErrUnavailable) || llmproxy.ErrorCode(err) != llmproxy.CodeUnavailable {
			t.Errorf("%s on a hung database = %v, want ErrUnavailable", tc.name, err)
		}
		if took > tc.bound+time.Second {
			t.Errorf("%s on a hung database took %v, want at most %v", tc.name, took, tc.bound)
		}
	}

	proxy.Restore()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := s.GetTokenByHash(ctx, tok.Hash)
		if err == nil && got.ID == tok.ID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the database answers again: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
