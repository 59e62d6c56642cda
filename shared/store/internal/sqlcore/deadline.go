package sqlcore

import (
	"context"
	"time"
)

// DefaultTimeout is the deadline of a database call when the configuration
// sets none (DATABASE_QUERY_TIMEOUT's default).
const DefaultTimeout = 5 * time.Second

// WithTimeout bounds every call of db: a read (a statement, its rows
// included) and a whole write transaction (begin, statements, commit) get
// at most d each, on top of whatever deadline the caller's context has. A
// database that accepts connections and never answers then fails the call
// with context.DeadlineExceeded (classified unavailable: 503) instead of
// holding the request. d <= 0 means DefaultTimeout.
func WithTimeout(db DB, d time.Duration) DB {
	if d <= 0 {
		d = DefaultTimeout
	}
	return timed{db: db, d: d}
}

type timed struct {
	db DB
	d  time.Duration
}

func (t timed) Reader() Querier { return timedQuerier{q: t.db.Reader(), d: t.d} }

// WriteTx gives the whole transaction one deadline: its statements run on
// the callers' contexts, so each is bounded by the same instant.
func (t timed) WriteTx(ctx context.Context, fn func(q Querier) error) error {
	deadline := time.Now().Add(t.d)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	return t.db.WriteTx(ctx, func(q Querier) error { return fn(timedQuerier{q: q, deadline: deadline}) })
}

func (t timed) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, t.d)
	defer cancel()
	return t.db.Ping(ctx)
}

func (t timed) Close() error { return t.db.Close() }

// timedQuerier bounds each statement by d from its start, or, inside a
// write transaction, by the transaction's deadline.
type timedQuerier struct {
	q        Querier
	d        time.Duration
	deadline time.Time
}

func (t timedQuerier) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if !t.deadline.IsZero() {
		return context.WithDeadline(ctx, t.deadline)
	}
	return context.WithTimeout(ctx, t.d)
}

func (t timedQuerier) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	ctx, cancel := t.bound(ctx)
	defer cancel()
	return t.q.Exec(ctx, query, args...)
}

func (t timedQuerier) QueryRow(ctx context.Context, query string, args ...any) Row {
	ctx, cancel := t.bound(ctx)
	return timedRow{row: t.q.QueryRow(ctx, query, args...), cancel: cancel}
}

func (t timedQuerier) Query(ctx context.Context, query string, args ...any) (Rows, error) {
	ctx, cancel := t.bound(ctx)
	rows, err := t.q.Query(ctx, query, args...)
	if err != nil {
		cancel()
		return nil, err
	}
	return timedRows{Rows: rows, cancel: cancel}, nil
}

// timedRow releases its deadline once scanned (the statement's end).
type timedRow struct {
	row    Row
	cancel context.CancelFunc
}

func (r timedRow) Scan(dest ...any) error {
	defer r.cancel()
	return r.row.Scan(dest...)
}

// timedRows releases its deadline when closed: the rows are read under it.
type timedRows struct {
	Rows
	cancel context.CancelFunc
}

func (r timedRows) Close() {
	r.Rows.Close()
	r.cancel()
}
