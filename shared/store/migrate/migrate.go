// Package migrate applies the embedded SQL migrations (package migrations)
// to PostgreSQL or SQLite with golang-migrate v4.
//
// driver is a DB_DRIVER value ("postgres" or "sqlite"); dsn is the
// PostgreSQL connection URL (postgres://…, also pgx5:// or postgresql://) or
// the SQLite file path (a sqlite:// prefix is accepted). For PostgreSQL the
// version table (schema_migrations) lands in the connection's current schema,
// so a URL carrying search_path migrates that schema only.
//
// Nothing here runs at a function's start: `llm-proxy migrate …`, the
// Knative migration Job and `llm-proxy serve` call it.
package migrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database"
	pgxmigrate "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	sqlitemigrate "github.com/golang-migrate/migrate/v4/database/sqlite"
	"github.com/golang-migrate/migrate/v4/source"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx/v5" for golang-migrate
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"

	"github.com/llm-proxy/llm-proxy/migrations"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/store/postgres"
	"github.com/llm-proxy/llm-proxy/shared/store/sqlite"
)

// ErrNoDatabase: a read-only command (status, version) found no database
// file, or no llm-proxy schema in it; nothing was created.
var ErrNoDatabase = errors.New("no database")

// Info is the state of a database's schema.
type Info struct {
	Version uint // applied version, 0 when none
	Dirty   bool // a migration failed half-way; fix by hand, then force
	Latest  uint // newest embedded version
}

// Pending reports whether migrations remain to be applied.
func (i Info) Pending() bool { return i.Version < i.Latest }

// DSN returns the dsn argument for cfg: the URL for PostgreSQL, the file
// path for SQLite.
func DSN(cfg config.Database) string {
	if cfg.Driver == migrations.Postgres {
		return cfg.URL
	}
	return cfg.Path
}

// Up applies every pending migration. No pending migration is not an error.
func Up(ctx context.Context, driver, dsn string) error {
	return run(ctx, driver, dsn, "up", func(m *migrate.Migrate) error { return m.Up() })
}

// Down reverts every applied migration (all the way down).
func Down(ctx context.Context, driver, dsn string) error {
	return run(ctx, driver, dsn, "down", func(m *migrate.Migrate) error { return m.Down() })
}

// Version returns the applied version (0 when none) and whether it is dirty.
func Version(ctx context.Context, driver, dsn string) (version uint, dirty bool, err error) {
	info, err := Status(ctx, driver, dsn)
	return info.Version, info.Dirty, err
}

// Status returns the applied and the latest embedded version.
func Status(ctx context.Context, driver, dsn string) (Info, error) {
	var info Info
	latest, err := Latest(driver)
	if err != nil {
		return info, err
	}
	info.Latest = latest
	err = run(ctx, driver, dsn, "status", func(m *migrate.Migrate) error {
		v, dirty, err := m.Version()
		if errors.Is(err, migrate.ErrNilVersion) {
			return nil
		}
		info.Version, info.Dirty = v, dirty
		return err
	})
	return info, err
}

// Latest returns the newest embedded migration version of driver.
func Latest(driver string) (uint, error) {
	src, err := sourceFor(driver)
	if err != nil {
		return 0, err
	}
	defer src.Close()
	v, err := src.First()
	if err != nil {
		return 0, fmt.Errorf("migrations: %w", err)
	}
	for {
		next, err := src.Next(v)
		if errors.Is(err, fs.ErrNotExist) {
			return v, nil
		}
		if err != nil {
			return 0, fmt.Errorf("migrations: %w", err)
		}
		v = next
	}
}

func sourceFor(driver string) (source.Driver, error) {
	switch driver {
	case migrations.Postgres, migrations.SQLite:
	default:
		return nil, fmt.Errorf("migrate: unknown driver %q (want postgres or sqlite)", driver)
	}
	src, err := iofs.New(migrations.FS, driver)
	if err != nil {
		return nil, fmt.Errorf("migrate: open embedded %s migrations: %w", driver, err)
	}
	return src, nil
}

// run opens a migrator, runs fn and closes everything. ctx bounds the
// connection and stops between migrations when cancelled. Only up and down
// create a SQLite file; status reads one that exists or fails with
// ErrNoDatabase.
func run(ctx context.Context, driver, dsn, op string, fn func(*migrate.Migrate) error) (err error) {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("migrate %s: %w", op, err)
	}
	src, err := sourceFor(driver)
	if err != nil {
		return err
	}
	db, dbDriver, err := openDatabase(ctx, driver, dsn, op != "status")
	if errors.Is(err, ErrNoDatabase) {
		_ = src.Close()
		return err
	}
	if err != nil {
		_ = src.Close()
		return fmt.Errorf("migrate %s: %w", op, err)
	}
	m, err := migrate.NewWithInstance("iofs", src, driver, dbDriver)
	if err != nil {
		_ = src.Close()
		_ = dbDriver.Close()
		return fmt.Errorf("migrate %s: %w", op, err)
	}
	defer func() {
		srcErr, dbErr := m.Close()
		if err == nil && dbErr != nil {
			err = fmt.Errorf("migrate %s: close: %w", op, dbErr)
		}
		_ = srcErr
		_ = db // closed by dbDriver
	}()

	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			select {
			case m.GracefulStop <- true:
			default:
			}
		case <-done:
		}
	}()

	err = fn(m)
	switch {
	case err == nil, errors.Is(err, migrate.ErrNoChange):
		return ctx.Err()
	case errors.As(err, new(migrate.ErrDirty)):
		return fmt.Errorf("migrate %s: %w (a previous migration failed half-way: repair the schema, then force the version)", op, err)
	}
	return fmt.Errorf("migrate %s: %w", op, err)
}

// openDatabase opens a database/sql handle with the settings the store uses
// and wraps it in golang-migrate's driver for the engine. Without create, a
// missing SQLite file is ErrNoDatabase (and is not created).
func openDatabase(ctx context.Context, driver, dsn string, create bool) (*sql.DB, database.Driver, error) {
	switch driver {
	case migrations.Postgres:
		db, err := sql.Open("pgx/v5", postgres.URL(dsn))
		if err != nil {
			return nil, nil, fmt.Errorf("open postgres: %w", err)
		}
		if err := db.PingContext(ctx); err != nil {
			_ = db.Close()
			return nil, nil, fmt.Errorf("connect to postgres: %w", err)
		}
		d, err := pgxmigrate.WithInstance(db, &pgxmigrate.Config{})
		if err != nil {
			_ = db.Close()
			return nil, nil, fmt.Errorf("postgres: %w", err)
		}
		return db, d, nil
	case migrations.SQLite:
		path := strings.TrimPrefix(dsn, "sqlite://")
		if path == "" {
			return nil, nil, errors.New("sqlite: empty database path")
		}
		mode := "rwc"
		if !create {
			if err := SQLiteExists(path); err != nil {
				return nil, nil, err
			}
			mode = "rw" // never creates the file, even if it vanished since
		} else if err := sqlite.PrepareFile(path); err != nil {
			return nil, nil, err
		}
		db, err := sql.Open("sqlite", "file:"+path+"?mode="+mode+"&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)")
		if err != nil {
			return nil, nil, fmt.Errorf("open sqlite: %w", err)
		}
		db.SetMaxOpenConns(1)
		if err := db.PingContext(ctx); err != nil {
			_ = db.Close()
			return nil, nil, fmt.Errorf("open sqlite %s: %w", path, err)
		}
		d, err := sqlitemigrate.WithInstance(db, &sqlitemigrate.Config{})
		if err != nil {
			_ = db.Close()
			return nil, nil, fmt.Errorf("sqlite: %w", err)
		}
		return db, d, nil
	}
	return nil, nil, fmt.Errorf("unknown driver %q (want postgres or sqlite)", driver)
}

// SQLiteExists returns nil when the SQLite database file path exists, else
// an error wrapping ErrNoDatabase that says how to create one.
func SQLiteExists(path string) error {
	path = strings.TrimPrefix(path, "sqlite://")
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w at %s (DATABASE_PATH): nothing was created; run `llm-proxy migrate up` (or `llm-proxy serve`) to create it, or point DATABASE_PATH at the existing one", ErrNoDatabase, path)
	} else if err != nil {
		return fmt.Errorf("sqlite %s: %w", path, err)
	}
	return nil
}

// RequireSchema returns nil when the database holds the llm-proxy schema
// (any applied version), else an error wrapping ErrNoDatabase that says what
// to do; nothing is created. Read-only commands call it before they open the
// store.
func RequireSchema(ctx context.Context, driver, dsn string) error {
	info, err := Status(ctx, driver, dsn)
	if err != nil {
		return err
	}
	if info.Version == 0 {
		return fmt.Errorf("%w: the database (DB_DRIVER=%s) has no llm-proxy schema; run `llm-proxy migrate up` first, or point DATABASE_URL / DATABASE_PATH at the right one", ErrNoDatabase, driver)
	}
	return nil
}
