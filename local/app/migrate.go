package app

import (
	"context"
	"fmt"
	"io"

	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/secrets"
	"github.com/llm-proxy/llm-proxy/shared/store/dbopen"
	"github.com/llm-proxy/llm-proxy/shared/store/migrate"
)

const migrateUsage = `usage: llm-proxy migrate up|down|status|version|rotate-keys

  up           apply every pending migration (idempotent)
  down         revert every migration (drops all tables: asks for --yes)
  status       applied and latest version, dirty flag
  version      the applied version
  rotate-keys  re-encrypt every upstream key under ENCRYPTION_KEY; the old keys
               must still be listed in ENCRYPTION_KEY_PREVIOUS while it runs
`

func runMigrate(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "llm-proxy migrate: missing subcommand (run `llm-proxy migrate --help` for usage)")
		return 2
	}
	if isHelp(args[0]) {
		fmt.Fprint(stdout, migrateUsage)
		return 0
	}
	switch args[0] {
	case "up", "down", "status", "version", "rotate-keys":
	default:
		fmt.Fprintf(stderr, "llm-proxy migrate: unknown subcommand %q (run `llm-proxy migrate --help` for usage)\n", args[0])
		return 2
	}
	cfg, ok := loadConfig(ctx, lookupEnv, stderr)
	if !ok {
		return 1
	}
	driver, dsn := cfg.Database.Driver, migrate.DSN(cfg.Database)
	fail := func(err error) int {
		fmt.Fprintln(stderr, "llm-proxy migrate:", err)
		return 1
	}
	switch args[0] {
	case "up":
		if err := migrate.Up(ctx, driver, dsn); err != nil {
			return fail(err)
		}
		return printStatus(ctx, driver, dsn, stdout, stderr)
	case "down":
		if len(args) < 2 || args[1] != "--yes" {
			fmt.Fprintln(stderr, "llm-proxy migrate down drops every table and all data; run `llm-proxy migrate down --yes` to confirm")
			return 2
		}
		if err := migrate.Down(ctx, driver, dsn); err != nil {
			return fail(err)
		}
		return printStatus(ctx, driver, dsn, stdout, stderr)
	case "status":
		return printStatus(ctx, driver, dsn, stdout, stderr)
	case "version":
		v, dirty, err := migrate.Version(ctx, driver, dsn)
		if err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "%d%s\n", v, map[bool]string{true: " (dirty)"}[dirty])
		return 0
	case "rotate-keys":
		n, err := rotateKeys(ctx, cfg)
		if err != nil {
			return fail(err)
		}
		noun := "upstream keys"
		if n == 1 {
			noun = "upstream key"
		}
		fmt.Fprintf(stdout, "re-encrypted %d %s under the current ENCRYPTION_KEY\n", n, noun)
		return 0
	}
	return 2 // unreachable: the subcommand was checked above
}

func printStatus(ctx context.Context, driver, dsn string, stdout, stderr io.Writer) int {
	info, err := migrate.Status(ctx, driver, dsn)
	if err != nil {
		fmt.Fprintln(stderr, "llm-proxy migrate:", err)
		return 1
	}
	state := "up to date"
	if info.Pending() {
		state = "pending migrations"
	}
	if info.Dirty {
		state = "DIRTY: a migration failed half-way; fix the schema by hand"
	}
	fmt.Fprintf(stdout, "driver %s: version %d of %d, %s\n", driver, info.Version, info.Latest, state)
	if info.Dirty {
		return 1
	}
	return 0
}

// rotateKeys re-encrypts every project's upstream key under the current key.
// Token hashes cannot be recomputed (the plaintext is gone); validation keeps
// trying the previous keys' hashes until those tokens expire.
func rotateKeys(ctx context.Context, cfg config.Config) (int, error) {
	if err := migrate.RequireSchema(ctx, cfg.Database.Driver, migrate.DSN(cfg.Database)); err != nil {
		return 0, err
	}
	key, err := encryptionKey(cfg)
	if err != nil {
		return 0, err
	}
	kr, err := secrets.NewKeyring(key, secrets.SplitKeys(cfg.Secrets.EncryptionKeyPrevious))
	if err != nil {
		return 0, err
	}
	st, err := dbopen.Open(ctx, cfg.Database)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	return st.ReencryptProjectKeys(ctx, kr.Reencrypt)
}

// encryptionKey is ENCRYPTION_KEY, or for the embedded default the key file
// that `llm-proxy serve` created in DATA_DIR.
func encryptionKey(cfg config.Config) (string, error) {
	if cfg.Secrets.EncryptionKey != "" {
		return cfg.Secrets.EncryptionKey, nil
	}
	key, _, err := secrets.LoadOrCreateKeyFile(cfg.Server.DataDir)
	return key, err
}
