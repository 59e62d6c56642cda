// Package postgres is the PostgreSQL adapter of store.Store (pgx/v5,
// pgxpool). Open never dials: the pool connects on first use, so a function
// does no network I/O before it listens. The schema comes from
// shared/store/migrate; times are timestamptz in UTC.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/store/internal/sqlcore"
)

// Store is the PostgreSQL store. Its methods are those of store.Store.
type Store struct {
	*sqlcore.Core
	pool *pgxpool.Pool
}

// Open configures a connection pool for cfg.URL without connecting.
func Open(ctx context.Context, cfg config.Database) (*Store, error) {
	if cfg.Driver != "" && cfg.Driver != "postgres" {
		return nil, fmt.Errorf("DB_DRIVER=%s: the deployable functions run on PostgreSQL (set DB_DRIVER=postgres and DATABASE_URL); SQLite is for llm-proxy serve", cfg.Driver)
	}
	if cfg.URL == "" {
		return nil, errors.New("postgres: DATABASE_URL is empty")
	}
	pc, err := pgxpool.ParseConfig(URL(cfg.URL))
	if err != nil {
		// The parse error may quote the URL, password included.
		return nil, errors.New("postgres: DATABASE_URL is not a valid connection string")
	}
	if cfg.PoolSize > 0 {
		pc.MaxConns = cfg.PoolSize
	}
	// No minimum: a minimum would make the pool dial in the background right
	// after Open, before the function listens.
	pc.MinConns, pc.MinIdleConns = 0, 0
	if cfg.ConnMaxLifetime > 0 {
		pc.MaxConnLifetime = cfg.ConnMaxLifetime
	}
	if pc.ConnConfig.ConnectTimeout == 0 {
		pc.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("postgres: create pool: %w", err)
	}
	return &Store{Core: sqlcore.New(sqlcore.WithTimeout(db{pool}, cfg.QueryTimeout), dialect), pool: pool}, nil
}

// Pool returns the underlying pool (for health checks and tests).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// auditLockClass is the first key of the transaction-level advisory lock
// that serialises audit appends; the second key is the audit table's oid, so
// that schemas in one database do not wait for each other.
const auditLockClass = 0x6c6c6d70 // "llmp"

var dialect = sqlcore.Dialect{
	Name:      "postgres",
	Dollar:    true,
	Time:      func(t time.Time) any { return t },
	ForUpdate: " FOR UPDATE",
	ForShare:  " FOR SHARE",
	LockAudit: func(ctx context.Context, q sqlcore.Querier) error {
		_, err := q.Exec(ctx, `SELECT pg_advisory_xact_lock($1, 'audit_events'::regclass::oid::int4)`, int32(auditLockClass))
		return err
	},
	Classify: classify,
}

func classify(err error) (sqlcore.ErrKind, string) {
	if errors.Is(err, pgx.ErrNoRows) {
		return sqlcore.KindNotFound, ""
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "23505":
			return sqlcore.KindUnique, pgErr.ConstraintName
		case pgErr.Code == "23503":
			return sqlcore.KindForeignKey, pgErr.ConstraintName
		case strings.HasPrefix(pgErr.Code, "08"), // connection exception
			strings.HasPrefix(pgErr.Code, "53"),          // insufficient resources
			strings.HasPrefix(pgErr.Code, "57"),          // operator intervention (shutdown, cancel)
			pgErr.Code == "40001", pgErr.Code == "40P01": // serialization failure, deadlock
			return sqlcore.KindUnavailable, ""
		}
		return sqlcore.KindOther, ""
	}
	var netErr net.Error
	var connErr *pgconn.ConnectError
	switch {
	case errors.As(err, &connErr), errors.As(err, &netErr), pgconn.Timeout(err), pgconn.SafeToRetry(err),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return sqlcore.KindUnavailable, ""
	}
	if strings.Contains(err.Error(), "closed pool") {
		return sqlcore.KindUnavailable, ""
	}
	return sqlcore.KindOther, ""
}

// db adapts pgxpool to sqlcore.DB.
type db struct{ pool *pgxpool.Pool }

func (d db) Reader() sqlcore.Querier { return querier{d.pool} }

func (d db) WriteTx(ctx context.Context, fn func(q sqlcore.Querier) error) error {
	return pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error { return fn(querier{tx}) })
}

func (d db) Ping(ctx context.Context) error { return d.pool.Ping(ctx) }

func (d db) Close() error {
	d.pool.Close()
	return nil
}

// pgxQuerier is what pgxpool.Pool and pgx.Tx have in common.
type pgxQuerier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

type querier struct{ q pgxQuerier }

func (q querier) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := q.q.Exec(ctx, query, args...)
	return tag.RowsAffected(), err
}

func (q querier) QueryRow(ctx context.Context, query string, args ...any) sqlcore.Row {
	return q.q.QueryRow(ctx, query, args...)
}

func (q querier) Query(ctx context.Context, query string, args ...any) (sqlcore.Rows, error) {
	rows, err := q.q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return rows, nil
}

// URL normalises the scheme of a PostgreSQL URL for pgx: golang-migrate
// style pgx5:// and pgx:// become postgres://.
func URL(dsn string) string {
	for _, p := range []string{"pgx5://", "pgx://"} {
		if strings.HasPrefix(dsn, p) {
			return "postgres://" + strings.TrimPrefix(dsn, p)
		}
	}
	return dsn
}
