package sqlite

import (
	"context"
	"database/sql"
	"testing"

	"github.com/llm-proxy/llm-proxy/internal/testenv"
	"github.com/llm-proxy/llm-proxy/shared/config"
)

// Every connection, writer and readers, runs with the pragmas the store
// relies on.
func TestConnectionPragmas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := Open(ctx, config.Database{Driver: "sqlite", Path: testenv.SQLitePath(t), PoolSize: 2})
	testenv.Must(t, err)
	defer s.Close()
	for name, db := range map[string]*sql.DB{"writer": s.w, "reader": s.r} {
		var fk, busy int
		var mode string
		testenv.Must(t, db.QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk))
		testenv.Must(t, db.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode))
		testenv.Must(t, db.QueryRowContext(ctx, `PRAGMA busy_timeout`).Scan(&busy))
		if fk != 1 || mode != "wal" || busy != int(busyTimeout.Milliseconds()) {
			t.Errorf("%s: foreign_keys=%d journal_mode=%s busy_timeout=%d", name, fk, mode, busy)
		}
	}
	if _, err := s.r.ExecContext(ctx, `CREATE TABLE x (a INTEGER)`); err == nil {
		t.Error("reader connections accept writes, want query_only")
	}
}
