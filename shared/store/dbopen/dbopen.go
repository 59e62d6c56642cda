// Package dbopen opens the store engine that the configuration names
// (DB_DRIVER): PostgreSQL or SQLite. It does not migrate; see
// shared/store/migrate.
package dbopen

import (
	"context"
	"fmt"

	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/store"
	"github.com/llm-proxy/llm-proxy/shared/store/postgres"
	"github.com/llm-proxy/llm-proxy/shared/store/sqlite"
)

// Open returns the store for cfg.Driver ("postgres" or "sqlite"). The
// PostgreSQL pool does not dial until first use.
func Open(ctx context.Context, cfg config.Database) (store.Store, error) {
	switch cfg.Driver {
	case "postgres":
		s, err := postgres.Open(ctx, cfg)
		if err != nil {
			return nil, err
		}
		return s, nil
	case "sqlite", "":
		s, err := sqlite.Open(ctx, cfg)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	return nil, fmt.Errorf("open store: DB_DRIVER=%q is invalid: must be one of sqlite, postgres", cfg.Driver)
}
