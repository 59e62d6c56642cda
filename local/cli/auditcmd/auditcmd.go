// Package auditcmd is the `llm-proxy audit` command:
//
//	llm-proxy audit verify [--json]
//
// verify walks the audit hash chain in the configured database and prints OK
// with the number of records, or the first broken link (exit code 1).
package auditcmd

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/llm-proxy/llm-proxy/shared/audit"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/store/dbopen"
)

// Exit codes.
const (
	ExitOK     = 0
	ExitBroken = 1 // the chain is broken, or the database failed
	ExitUsage  = 2
)

const usageText = `Usage: llm-proxy audit verify [--json]

Checks the audit trail's hash chain in the configured database (DB_DRIVER,
DATABASE_URL / DATABASE_PATH) and reports the first broken link.
`

// Run executes `llm-proxy audit` with args (without "audit").
func Run(ctx context.Context, args []string, cfg config.Config, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "verify" {
		if len(args) > 0 && (args[0] == "help" || args[0] == "-h" || args[0] == "--help") {
			fmt.Fprint(stdout, usageText)
			return ExitOK
		}
		fmt.Fprintf(stderr, "llm-proxy audit: unknown or missing subcommand\n\n%s", usageText)
		return ExitUsage
	}
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args[1:]); err != nil || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "llm-proxy audit verify: bad arguments\n\n%s", usageText)
		return ExitUsage
	}
	st, err := dbopen.Open(ctx, cfg.Database)
	if err != nil {
		fmt.Fprintf(stderr, "llm-proxy audit verify: open database: %v\n", err)
		return ExitBroken
	}
	defer st.Close()
	res, err := audit.Verify(ctx, st)
	if err != nil {
		fmt.Fprintf(stderr, "llm-proxy audit verify: %v\n", err)
		return ExitBroken
	}
	if *asJSON {
		out := map[string]any{"ok": res.OK(), "count": res.Count}
		if res.Broken != nil {
			out["broken"] = map[string]any{"seq": res.Broken.Seq, "id": res.Broken.ID, "reason": res.Broken.Reason}
		}
		_ = json.NewEncoder(stdout).Encode(out)
	} else if res.OK() {
		fmt.Fprintf(stdout, "OK: %d audit records, hash chain intact\n", res.Count)
	} else {
		fmt.Fprintf(stdout, "BROKEN: audit record seq %d (id %s): %s (%d records before it are intact)\n",
			res.Broken.Seq, res.Broken.ID, res.Broken.Reason, res.Count)
	}
	if !res.OK() {
		return ExitBroken
	}
	return ExitOK
}
