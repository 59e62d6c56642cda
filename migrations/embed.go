// Package migrations embeds the SQL migrations of both store engines, in
// golang-migrate's file naming (NNNNNN_name.up.sql / .down.sql):
// postgres/ for PostgreSQL and sqlite/ for SQLite. Both define the same tables
// and columns; shared/store/migrate applies them.
package migrations

import "embed"

// FS holds the directories "postgres" and "sqlite".
//
//go:embed postgres/*.sql sqlite/*.sql
var FS embed.FS

// Directory names inside FS, one per store engine (config DB_DRIVER values).
const (
	Postgres = "postgres"
	SQLite   = "sqlite"
)
