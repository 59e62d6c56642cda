// Package sqlcore implements store.Store once over a small abstraction of a
// SQL engine, so that the PostgreSQL and SQLite adapters behave identically:
// the same statements, the same audit chain, the same error translation.
// The adapters supply a Dialect (placeholders, time encoding, locking, error
// classification) and a DB (reads and serialised write transactions).
package sqlcore

import (
	"context"
	"strconv"
	"strings"
	"time"
)

// Querier runs statements, inside or outside a transaction.
type Querier interface {
	Exec(ctx context.Context, query string, args ...any) (rowsAffected int64, err error)
	QueryRow(ctx context.Context, query string, args ...any) Row
	Query(ctx context.Context, query string, args ...any) (Rows, error)
}

// Row is one result row.
type Row interface {
	Scan(dest ...any) error
}

// Rows is a result set.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// DB is an engine's connection handling.
type DB interface {
	// Reader runs reads outside any transaction.
	Reader() Querier
	// WriteTx runs fn in a write transaction and commits when fn returns nil.
	// Write transactions that append audit records are serialised by
	// Dialect.LockAudit (PostgreSQL) or by the engine itself (SQLite).
	WriteTx(ctx context.Context, fn func(q Querier) error) error
	Ping(ctx context.Context) error
	Close() error
}

// ErrKind classifies an engine error.
type ErrKind int

// Error kinds an engine error is classified into.
const (
	KindOther       ErrKind = iota
	KindNotFound            // no rows
	KindUnique              // unique or primary key violation
	KindForeignKey          // foreign key violation
	KindUnavailable         // connection, timeout, busy, I/O
)

// Dialect is what differs between engines.
type Dialect struct {
	// Name is "postgres" or "sqlite" (for error messages).
	Name string
	// Dollar placeholders ($1, $2…) instead of "?".
	Dollar bool
	// Time encodes a time argument (UTC, microseconds).
	Time func(time.Time) any
	// ForUpdate and ForShare are appended to row reads in write
	// transactions that must lock the row ("" where the transaction already
	// excludes other writers).
	ForUpdate, ForShare string
	// LockAudit serialises audit appends within the write transaction.
	LockAudit func(ctx context.Context, q Querier) error
	// Classify maps an engine error to a kind and, for KindUnique, the name
	// of the violated constraint in PostgreSQL's naming (table_column_key,
	// table_pkey).
	Classify func(err error) (kind ErrKind, constraint string)
}

// rebind turns "?" placeholders into "$n" for PostgreSQL. Our statements
// have no "?" inside literals.
func (d *Dialect) rebind(q string) string {
	if !d.Dollar || !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// TimeFormat is SQLite's stored time format: UTC, fixed microseconds, so
// that strings sort and compare like the times they encode.
const TimeFormat = "2006-01-02T15:04:05.000000Z"

// FormatTime encodes t in TimeFormat.
func FormatTime(t time.Time) string { return t.UTC().Truncate(time.Microsecond).Format(TimeFormat) }

// Micro returns t in UTC truncated to microseconds, the precision both
// engines store.
func Micro(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }
