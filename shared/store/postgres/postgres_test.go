package postgres_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

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
