// Package managementtest builds real management stacks for tests: a migrated
// store on SQLite or PostgreSQL (through internal/testenv), a keyring, an
// audit recorder writing a JSONL file, a Service, a management-token Auth,
// and a log buffer to inspect.
package managementtest

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/llm-proxy/llm-proxy/internal/testenv"
	"github.com/llm-proxy/llm-proxy/shared/audit"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/management"
	"github.com/llm-proxy/llm-proxy/shared/mgmtauth"
	"github.com/llm-proxy/llm-proxy/shared/secrets"
	"github.com/llm-proxy/llm-proxy/shared/store"
	"github.com/llm-proxy/llm-proxy/shared/store/dbopen"
	"github.com/llm-proxy/llm-proxy/shared/store/migrate"
)

// Engines are the store engines every suite runs on.
var Engines = []string{"sqlite", "postgres"}

// ManagementToken is the token the test Auth accepts.
const ManagementToken = "test-management-token-0123456789"

// DatabaseConfig returns an isolated database of the engine for t.
func DatabaseConfig(t testing.TB, engine string) config.Database {
	t.Helper()
	cfg := config.Database{Driver: engine, PoolSize: 8, MaxIdleConns: 2, ConnMaxLifetime: time.Hour}
	switch engine {
	case "sqlite":
		cfg.Path = testenv.SQLitePath(t)
	case "postgres":
		cfg.URL = testenv.PostgresURL(t)
	default:
		t.Fatalf("unknown engine %q", engine)
	}
	return cfg
}

// OpenStore migrates and opens a fresh store of the engine, closed at the end
// of the test.
func OpenStore(t testing.TB, cfg config.Database) store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := migrate.Up(ctx, cfg.Driver, migrate.DSN(cfg)); err != nil {
		t.Fatalf("migrate %s: %v", cfg.Driver, err)
	}
	st, err := dbopen.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("open %s store: %v", cfg.Driver, err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// Invalidations records what the service asked to invalidate.
type Invalidations struct {
	mu       sync.Mutex
	Tokens   []string
	Projects []string
}

// InvalidateToken records id.
func (i *Invalidations) InvalidateToken(_ context.Context, id string) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.Tokens = append(i.Tokens, id)
	return nil
}

// InvalidateProject records id.
func (i *Invalidations) InvalidateProject(_ context.Context, id string) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.Projects = append(i.Projects, id)
	return nil
}

// Has reports whether the token (kind "token") or project id was invalidated.
func (i *Invalidations) Has(kind, id string) bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	list := i.Projects
	if kind == "token" {
		list = i.Tokens
	}
	for _, x := range list {
		if x == id {
			return true
		}
	}
	return false
}

// Env is a full management stack on one engine.
type Env struct {
	Engine        string
	DB            config.Database
	Store         store.Store
	EncryptionKey string // the keyring's master key (ENCRYPTION_KEY)
	Keyring       *secrets.Keyring
	AuditKeys     *audit.Keys // seal the audit chain (derived from Keyring)
	Recorder      *audit.Recorder
	Service       *management.Service
	Auth          *mgmtauth.Auth
	Invalidations *Invalidations
	Logs          *testenv.Buffer
	Log           *slog.Logger
	AuditFile     string
}

// Options tune New.
type Options struct {
	FailureLimit int // default 10
}

// New builds an Env on engine.
func New(t testing.TB, engine string, o Options) *Env {
	t.Helper()
	e := &Env{Engine: engine, Logs: &testenv.Buffer{}, Invalidations: &Invalidations{}}
	e.Log = slog.New(slog.NewJSONHandler(e.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.DB = DatabaseConfig(t, engine)
	e.Store = OpenStore(t, e.DB)
	key, err := secrets.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	e.EncryptionKey = key
	if e.Keyring, err = secrets.NewKeyring(key, nil); err != nil {
		t.Fatal(err)
	}
	if e.AuditKeys, err = audit.KeysFrom(e.Keyring); err != nil {
		t.Fatal(err)
	}
	e.AuditFile = filepath.Join(t.TempDir(), "audit", "audit.jsonl")
	e.Recorder, err = audit.NewRecorder(audit.Options{
		Store: e.Store, StoreInDB: true, File: e.AuditFile, CreateDir: true, Keys: e.AuditKeys, Log: e.Log,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Recorder.Close() })
	e.Service = management.New(management.Deps{
		Store: e.Store, Keyring: e.Keyring, Invalidator: e.Invalidations, Audit: e.Recorder, Log: e.Log,
	})
	e.Auth = mgmtauth.New(mgmtauth.StaticToken(ManagementToken), mgmtauth.Options{
		Recorder: e.Recorder, FailureLimit: o.FailureLimit, Log: e.Log,
	})
	return e
}

// Actor is a test caller.
func Actor() management.Actor {
	return management.Actor{Name: audit.ActorManagementAPI, RequestID: "test-request", ClientIP: "192.0.2.1",
		Method: "TEST", Path: "/test", UserAgent: "managementtest"}
}
