package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/llm-proxy/llm-proxy/internal/testenv"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/store"
	"github.com/llm-proxy/llm-proxy/shared/store/migrate"
	"github.com/llm-proxy/llm-proxy/shared/store/sqlite"
	"github.com/llm-proxy/llm-proxy/shared/store/storetest"
)

func open(t *testing.T) store.Store {
	t.Helper()
	path := testenv.SQLitePath(t)
	ctx := context.Background()
	testenv.Must(t, migrate.Up(ctx, "sqlite", path))
	s, err := sqlite.Open(ctx, config.Database{Driver: "sqlite", Path: path, PoolSize: 10, MaxIdleConns: 5, ConnMaxLifetime: time.Hour})
	testenv.Must(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestContract(t *testing.T) {
	t.Parallel()
	storetest.Run(t, open)
}

func TestOpenCreatesDirectoryAndUsesWAL(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "a", "b", "llm-proxy.db")
	ctx := context.Background()
	testenv.Must(t, migrate.Up(ctx, "sqlite", path))
	s, err := sqlite.Open(ctx, config.Database{Driver: "sqlite", Path: path, PoolSize: 2})
	testenv.Must(t, err)
	defer s.Close()
	if _, err := s.CreateProject(ctx, llmproxy.Project{Name: "p", APIKeyEncrypted: "c", IsActive: true}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + "-wal"); err != nil {
		t.Fatalf("no WAL file next to the database: %v", err)
	}
}

// Two stores on one file (two processes in production) must not fail with
// SQLITE_BUSY nor lose increments.
func TestTwoStoresOneFile(t *testing.T) {
	t.Parallel()
	path := testenv.SQLitePath(t)
	ctx := context.Background()
	testenv.Must(t, migrate.Up(ctx, "sqlite", path))
	cfg := config.Database{Driver: "sqlite", Path: path, PoolSize: 4}
	a, err := sqlite.Open(ctx, cfg)
	testenv.Must(t, err)
	defer a.Close()
	b, err := sqlite.Open(ctx, cfg)
	testenv.Must(t, err)
	defer b.Close()
	p, err := a.CreateProject(ctx, llmproxy.Project{Name: "p", APIKeyEncrypted: "c", IsActive: true}, nil)
	testenv.Must(t, err)
	tk, err := a.CreateToken(ctx, llmproxy.Token{Hash: "h", ProjectID: p.ID, IsActive: true}, nil)
	testenv.Must(t, err)
	const n = 100
	errs := make(chan error, 2*n)
	for range n {
		go func() { errs <- a.AddUsage(ctx, []store.UsageDelta{{TokenID: tk.ID, Requests: 1}}) }()
		go func() {
			_, err := b.AppendAudit(ctx, llmproxy.AuditEvent{Action: "x", Outcome: llmproxy.OutcomeSuccess})
			if err == nil {
				err = b.AddUsage(ctx, []store.UsageDelta{{TokenID: tk.ID, Requests: 1}})
			}
			errs <- err
		}()
	}
	for range 2 * n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	got, err := b.GetToken(ctx, tk.ID)
	testenv.Must(t, err)
	if got.RequestCount != 2*n {
		t.Fatalf("request_count = %d, want %d", got.RequestCount, 2*n)
	}
	if chain := storetest.VerifyChain(t, a); len(chain) != n {
		t.Fatalf("chain has %d records, want %d", len(chain), n)
	}
}

func TestClosedIsUnavailable(t *testing.T) {
	t.Parallel()
	s := open(t)
	_ = s.Close()
	if err := s.Ping(context.Background()); llmproxy.ErrorCode(err) != llmproxy.CodeUnavailable {
		t.Fatalf("Ping on a closed store = %v, want unavailable", err)
	}
}
