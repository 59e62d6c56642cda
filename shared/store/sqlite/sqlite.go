// Package sqlite is the SQLite adapter of store.Store on modernc.org/sqlite
// (pure Go, no cgo): WAL, foreign keys on, times stored as UTC text with
// fixed microsecond precision.
//
// Writes go through one connection that begins every transaction with
// BEGIN IMMEDIATE, so writers in this process queue in Go instead of failing
// with SQLITE_BUSY, and read-modify-write sequences (counters, the audit
// chain) never interleave; busy_timeout covers other processes. Reads use a
// separate pool of read-only connections, which WAL lets run beside the
// writer.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	sqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/store/internal/sqlcore"
)

// busyTimeout is how long a statement waits for a lock held by another
// process before it fails.
const busyTimeout = 10 * time.Second

// Store is the SQLite store. Its methods are those of store.Store.
type Store struct {
	*sqlcore.Core
	w, r *sql.DB
}

// PrepareFile creates the database file at path (mode 0600) and its missing
// parent directories (mode 0700) when they do not exist, so that SQLite, which
// gives its -wal and -shm files the database file's mode, never creates a
// file other users can read. Existing files and directories are left as
// they are.
func PrepareFile(path string) error {
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("sqlite: create directory of %s: %w", path, err)
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case errors.Is(err, fs.ErrExist):
		return nil
	case err != nil:
		return fmt.Errorf("sqlite: create %s: %w", path, err)
	}
	return f.Close()
}

// Open opens (creating when needed, see PrepareFile) the database file
// cfg.Path and its parent directory. The schema comes from shared/store/migrate.
func Open(ctx context.Context, cfg config.Database) (*Store, error) {
	path := strings.TrimPrefix(cfg.Path, "sqlite://")
	if path == "" {
		return nil, errors.New("sqlite: DATABASE_PATH is empty")
	}
	if err := PrepareFile(path); err != nil {
		return nil, err
	}
	w, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	// The first connection switches the file to WAL; do it now so that an
	// unwritable path fails here, not on the first request.
	if err := w.PingContext(ctx); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	readers := int(cfg.PoolSize)
	if readers < 1 {
		readers = 4
	}
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(max(1, min(int(cfg.MaxIdleConns), readers)))
	if cfg.ConnMaxLifetime > 0 {
		r.SetConnMaxLifetime(cfg.ConnMaxLifetime)
	}
	s := &Store{w: w, r: r}
	s.Core = sqlcore.New(sqlcore.WithTimeout(dbs{w: w, r: r}, cfg.QueryTimeout), dialect)
	return s, nil
}

func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Set("_txlock", "immediate")
	}
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

var dialect = sqlcore.Dialect{
	Name:      "sqlite",
	Time:      func(t time.Time) any { return sqlcore.FormatTime(t) },
	LockAudit: func(context.Context, sqlcore.Querier) error { return nil }, // the write transaction is exclusive
	Classify:  classify,
}

func classify(err error) (sqlcore.ErrKind, string) {
	if errors.Is(err, sql.ErrNoRows) {
		return sqlcore.KindNotFound, ""
	}
	if errors.Is(err, sql.ErrConnDone) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return sqlcore.KindUnavailable, ""
	}
	var se *sqlite.Error
	if !errors.As(err, &se) {
		if strings.Contains(err.Error(), "database is closed") {
			return sqlcore.KindUnavailable, ""
		}
		return sqlcore.KindOther, ""
	}
	switch code := se.Code(); code {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return sqlcore.KindUnique, constraintName(se.Error())
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return sqlcore.KindForeignKey, ""
	default:
		switch code & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL,
			sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PROTOCOL, sqlite3.SQLITE_NOTADB,
			sqlite3.SQLITE_CORRUPT:
			return sqlcore.KindUnavailable, ""
		}
	}
	return sqlcore.KindOther, ""
}

// constraintName maps "UNIQUE constraint failed: projects.name" to the
// PostgreSQL constraint name (projects_name_key; projects_pkey for ids).
func constraintName(msg string) string {
	const marker = "constraint failed: "
	i := strings.LastIndex(msg, marker)
	if i < 0 {
		return ""
	}
	col := msg[i+len(marker):]
	if j := strings.IndexAny(col, " ,)"); j >= 0 {
		col = col[:j]
	}
	table, column, ok := strings.Cut(col, ".")
	if !ok {
		return ""
	}
	if column == "id" || (table == "settings" && column == "key") {
		return table + "_pkey"
	}
	return table + "_" + column + "_key"
}

// dbs adapts the writer and the reader pools to sqlcore.DB.
type dbs struct{ w, r *sql.DB }

func (d dbs) Reader() sqlcore.Querier { return querier{d.r} }

func (d dbs) WriteTx(ctx context.Context, fn func(q sqlcore.Querier) error) (err error) {
	tx, err := d.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if err := fn(querier{tx}); err != nil {
		return err
	}
	return tx.Commit()
}

func (d dbs) Ping(ctx context.Context) error {
	if err := d.r.PingContext(ctx); err != nil {
		return err
	}
	var n int
	return d.r.QueryRowContext(ctx, `SELECT 1`).Scan(&n)
}

func (d dbs) Close() error { return errors.Join(d.r.Close(), d.w.Close()) }

// sqlQuerier is what *sql.DB and *sql.Tx have in common.
type sqlQuerier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

type querier struct{ q sqlQuerier }

func (q querier) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := q.q.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (q querier) QueryRow(ctx context.Context, query string, args ...any) sqlcore.Row {
	return q.q.QueryRowContext(ctx, query, args...)
}

func (q querier) Query(ctx context.Context, query string, args ...any) (sqlcore.Rows, error) {
	rows, err := q.q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { _ = r.Rows.Close() }
