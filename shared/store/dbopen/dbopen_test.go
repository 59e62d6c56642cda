package dbopen_test

import (
	"context"
	"testing"

	"github.com/llm-proxy/llm-proxy/internal/testenv"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/store/dbopen"
	"github.com/llm-proxy/llm-proxy/shared/store/migrate"
)

func TestOpenEachEngine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  func(t *testing.T) config.Database
	}{
		{"postgres", func(t *testing.T) config.Database {
			return config.Database{Driver: "postgres", URL: testenv.PostgresURL(t), PoolSize: 4}
		}},
		{"sqlite", func(t *testing.T) config.Database {
			return config.Database{Driver: "sqlite", Path: testenv.SQLitePath(t), PoolSize: 4}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			cfg := tc.cfg(t)
			testenv.Must(t, migrate.Up(ctx, cfg.Driver, migrate.DSN(cfg)))
			s, err := dbopen.Open(ctx, cfg)
			testenv.Must(t, err)
			defer s.Close()
			p, err := s.CreateProject(ctx, llmproxy.Project{Name: "p", APIKeyEncrypted: "c", IsActive: true}, nil)
			testenv.Must(t, err)
			if _, err := s.GetProject(ctx, p.ID); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestOpenUnknownDriver(t *testing.T) {
	t.Parallel()
	s, err := dbopen.Open(context.Background(), config.Database{Driver: "mysql"})
	if err == nil || s != nil {
		t.Fatalf("Open(mysql) = %v, %v; want nil and an error", s, err)
	}
}

func TestOpenErrorIsNilStore(t *testing.T) {
	t.Parallel()
	s, err := dbopen.Open(context.Background(), config.Database{Driver: "postgres"})
	if err == nil || s != nil {
		t.Fatalf("Open(postgres without URL) = %#v, %v; want a nil store and an error", s, err)
	}
}
