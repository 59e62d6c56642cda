package migrate_test

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/llm-proxy/llm-proxy/internal/testenv"
	"github.com/llm-proxy/llm-proxy/shared/store/migrate"
)

func TestUpDownUp(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, driver string
		dsn          func(t *testing.T) string
		sqlDriver    string
		sqlDSN       func(dsn string) string
		tableExists  string
		placeholder  string
	}{
		{
			name: "postgres", driver: "postgres", dsn: func(t *testing.T) string { return testenv.PostgresURL(t) },
			sqlDriver: "pgx/v5", sqlDSN: func(d string) string { return d },
			tableExists: `SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name IN ('projects','tokens','audit_events','settings','usage_hourly')`,
		},
		{
			name: "sqlite", driver: "sqlite", dsn: func(t *testing.T) string { return testenv.SQLitePath(t) },
			sqlDriver: "sqlite", sqlDSN: func(d string) string { return "file:" + d + "?_pragma=busy_timeout(5000)" },
			tableExists: `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('projects','tokens','audit_events','settings','usage_hourly')`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			dsn := tc.dsn(t)
			latest, err := migrate.Latest(tc.driver)
			testenv.Must(t, err)
			if latest < 2 {
				t.Fatalf("latest = %d, want >= 2", latest)
			}

			if tc.driver == "sqlite" {
				// Reading the version of a file that does not exist says
				// so and creates nothing.
				if _, _, err := migrate.Version(ctx, tc.driver, dsn); !errors.Is(err, migrate.ErrNoDatabase) {
					t.Fatalf("Version without a database file: %v, want ErrNoDatabase", err)
				}
				if _, err := os.Stat(dsn); !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("Version created %s (%v)", dsn, err)
				}
				if err := migrate.RequireSchema(ctx, tc.driver, dsn); !errors.Is(err, migrate.ErrNoDatabase) {
					t.Fatalf("RequireSchema without a database file: %v, want ErrNoDatabase", err)
				}
			} else {
				v, dirty, err := migrate.Version(ctx, tc.driver, dsn)
				testenv.Must(t, err)
				if v != 0 || dirty {
					t.Fatalf("fresh database: version %d dirty %v, want 0 false", v, dirty)
				}
				if err := migrate.RequireSchema(ctx, tc.driver, dsn); !errors.Is(err, migrate.ErrNoDatabase) {
					t.Fatalf("RequireSchema on an empty database: %v, want ErrNoDatabase", err)
				}
			}

			db, err := sql.Open(tc.sqlDriver, tc.sqlDSN(dsn))
			testenv.Must(t, err)
			t.Cleanup(func() { _ = db.Close() })

			tables := func() int {
				t.Helper()
				var n int
				testenv.Must(t, db.QueryRowContext(ctx, tc.tableExists).Scan(&n))
				return n
			}
			works := func(id string) {
				t.Helper()
				q := `INSERT INTO projects (id, name, api_key_encrypted, api_key_hint, is_active, created_at, updated_at) VALUES ('` + id + `', '` + id + `', 'c', 'h', TRUE, '2026-01-02T03:04:05.000000Z', '2026-01-02T03:04:05.000000Z')`
				if _, err := db.ExecContext(ctx, q); err != nil {
					t.Fatalf("insert project: %v", err)
				}
				var name string
				testenv.Must(t, db.QueryRowContext(ctx, `SELECT name FROM projects WHERE id = '`+id+`'`).Scan(&name))
				if name != id {
					t.Fatalf("name = %q, want %q", name, id)
				}
				// 000002: hourly usage, one row per (project, hour).
				hour := `'2026-01-02T03:00:00.000000Z'`
				q = `INSERT INTO usage_hourly (project_id, hour, requests) VALUES ('` + id + `', ` + hour + `, 1)`
				if _, err := db.ExecContext(ctx, q); err != nil {
					t.Fatalf("insert usage: %v", err)
				}
				if _, err := db.ExecContext(ctx, q); err == nil {
					t.Fatal("second usage row for the same project and hour: want a primary key violation")
				}
			}

			testenv.Must(t, migrate.Up(ctx, tc.driver, dsn))
			testenv.Must(t, migrate.Up(ctx, tc.driver, dsn)) // no change is not an error
			if n := tables(); n != 5 {
				t.Fatalf("after up: %d tables, want 5", n)
			}
			works("p1")
			info, err := migrate.Status(ctx, tc.driver, dsn)
			testenv.Must(t, err)
			if info.Version != latest || info.Dirty || info.Pending() {
				t.Fatalf("status after up = %+v, want version %d clean", info, latest)
			}

			testenv.Must(t, migrate.Down(ctx, tc.driver, dsn))
			if n := tables(); n != 0 {
				t.Fatalf("after down: %d tables, want 0", n)
			}
			v, _, err := migrate.Version(ctx, tc.driver, dsn)
			testenv.Must(t, err)
			if v != 0 {
				t.Fatalf("version after down = %d, want 0", v)
			}

			testenv.Must(t, migrate.Up(ctx, tc.driver, dsn))
			works("p2")
			v, dirty, err := migrate.Version(ctx, tc.driver, dsn)
			testenv.Must(t, err)
			if v != latest || dirty {
				t.Fatalf("version after up again = %d dirty %v, want %d", v, dirty, latest)
			}
		})
	}
}

func TestPostgresVersionTableInSearchPathSchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := testenv.PostgresURL(t)
	testenv.Must(t, migrate.Up(ctx, "postgres", dsn))
	db, err := sql.Open("pgx/v5", dsn)
	testenv.Must(t, err)
	defer db.Close()
	var schema string
	testenv.Must(t, db.QueryRowContext(ctx, `SELECT table_schema FROM information_schema.tables WHERE table_name = 'schema_migrations' AND table_schema = current_schema()`).Scan(&schema))
	var inPublic int
	testenv.Must(t, db.QueryRowContext(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name IN ('projects', 'schema_migrations')`).Scan(&inPublic))
	if inPublic != 0 {
		t.Fatalf("%d migration tables landed in public, want 0", inPublic)
	}
}

func TestUnknownDriver(t *testing.T) {
	t.Parallel()
	if err := migrate.Up(context.Background(), "mysql", "x"); err == nil {
		t.Fatal("Up with driver mysql: want error")
	}
}
