// Package auditcmd is the `llm-proxy audit` command:
//
//	llm-proxy audit verify [--json] [--file PATH]
//
// verify walks the audit chain in the configured database, checks every
// record's MAC under the audit key derived from ENCRYPTION_KEY (or, for
// records sealed before a rotation, ENCRYPTION_KEY_PREVIOUS) and, with a
// file (AUDIT_LOG_FILE by default), checks the database against it: the file
// is the anchor that reveals records deleted from the end. It prints OK with
// the number of records, or the first broken link (exit code 1).
package auditcmd

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/llm-proxy/llm-proxy/shared/audit"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/secrets"
	"github.com/llm-proxy/llm-proxy/shared/store/dbopen"
	"github.com/llm-proxy/llm-proxy/shared/store/migrate"
)

// Exit codes.
const (
	ExitOK     = 0
	ExitBroken = 1 // the chain is broken, or the database failed
	ExitUsage  = 2
)

const usageText = `Usage: llm-proxy audit verify [--json] [--file PATH]

Checks the audit trail in the configured database (DB_DRIVER, DATABASE_URL /
DATABASE_PATH): sequence numbers, links, and every record's HMAC under the
audit key derived from ENCRYPTION_KEY (ENCRYPTION_KEY_PREVIOUS for records
sealed before a rotation), and reports the first broken link.

  --file PATH  also check the database against this audit file (default:
               AUDIT_LOG_FILE when set; --file= skips it). Records deleted
               from the end of the database are found only this way.
  --json       print the result as JSON
`

// Run executes `llm-proxy audit` with args (without "audit").
func Run(ctx context.Context, args []string, cfg config.Config, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "verify" {
		if len(args) > 0 && (args[0] == "help" || args[0] == "-h" || args[0] == "--help") {
			fmt.Fprint(stdout, usageText)
			return ExitOK
		}
		fmt.Fprintln(stderr, "llm-proxy audit: unknown or missing subcommand (run `llm-proxy audit --help` for usage)")
		return ExitUsage
	}
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	asJSON := fs.Bool("json", false, "print the result as JSON")
	file := fs.String("file", cfg.Audit.LogFile, "audit file to check the database against")
	if err := fs.Parse(args[1:]); errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usageText)
		return ExitOK
	} else if err != nil || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "llm-proxy audit verify: bad arguments (run `llm-proxy audit --help` for usage)")
		return ExitUsage
	}
	// A read-only command: a missing database is said, never created.
	if err := migrate.RequireSchema(ctx, cfg.Database.Driver, migrate.DSN(cfg.Database)); err != nil {
		fmt.Fprintf(stderr, "llm-proxy audit verify: %v\n", err)
		return ExitBroken
	}
	keys, err := auditKeys(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "llm-proxy audit verify: %v\n", err)
		return ExitBroken
	}
	st, err := dbopen.Open(ctx, cfg.Database)
	if err != nil {
		fmt.Fprintf(stderr, "llm-proxy audit verify: open database: %v\n", err)
		return ExitBroken
	}
	defer st.Close()
	res, err := audit.Verify(ctx, st, keys, audit.VerifyOptions{File: *file})
	if err != nil {
		fmt.Fprintf(stderr, "llm-proxy audit verify: %v\n", err)
		return ExitBroken
	}
	if *asJSON {
		printJSON(stdout, res)
	} else {
		printText(stdout, res)
	}
	if !res.OK() {
		return ExitBroken
	}
	return ExitOK
}

// auditKeys derives the audit keys from ENCRYPTION_KEY, or for the embedded
// default from the key file `llm-proxy serve` created in DATA_DIR (never
// creating one: a new key would verify nothing).
func auditKeys(cfg config.Config) (*audit.Keys, error) {
	key := cfg.Secrets.EncryptionKey
	if key == "" {
		if _, err := os.Stat(filepath.Join(cfg.Server.DataDir, secrets.KeyFileName)); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("the audit key derives from the encryption key: %w", secrets.ErrNoEncryptionKey)
		}
		k, _, err := secrets.LoadOrCreateKeyFile(cfg.Server.DataDir)
		if err != nil {
			return nil, err
		}
		key = k
	}
	kr, err := secrets.KeyringFromConfig(cfg.Secrets, key)
	if err != nil {
		return nil, err
	}
	return audit.KeysFrom(kr)
}

func printJSON(w io.Writer, res audit.Result) {
	out := map[string]any{"ok": res.OK(), "count": res.Count, "head_seq": res.Head,
		"legacy": res.Legacy, "legacy_through_seq": res.LegacyThrough}
	if res.Broken != nil {
		out["broken"] = map[string]any{"seq": res.Broken.Seq, "id": res.Broken.ID, "reason": res.Broken.Reason}
	}
	if f := res.File; f != nil {
		out["file"] = map[string]any{"path": f.Path, "lines": f.Lines, "unsealed_lines": f.Unsealed,
			"matched": f.Matched, "not_in_file": f.NotInFile}
	}
	_ = json.NewEncoder(w).Encode(out)
}

func printText(w io.Writer, res audit.Result) {
	if res.OK() {
		fmt.Fprintf(w, "OK: %d audit records, keyed hash chain intact (last seq %d)\n", res.Count, res.Head)
	} else {
		fmt.Fprintf(w, "BROKEN: audit record seq %d (id %s): %s (%d records before it are intact)\n",
			res.Broken.Seq, llmproxy.EscapeControl(res.Broken.ID), res.Broken.Reason, res.Count)
	}
	if res.Legacy > 0 {
		fmt.Fprintf(w, "  %d legacy records (seq 1-%d) were written before the chain was keyed: checked with the unkeyed hash, and pinned by the first keyed record after them\n",
			res.Legacy, res.LegacyThrough)
	}
	if f := res.File; f != nil {
		fmt.Fprintf(w, "  checked against %s: %d records matched, %d database records not in the file, %d unsealed lines\n",
			llmproxy.EscapeControl(f.Path), f.Matched, f.NotInFile, f.Unsealed)
	} else {
		fmt.Fprintln(w, "  no audit file checked (--file or AUDIT_LOG_FILE): records deleted from the end would not be noticed")
	}
}
