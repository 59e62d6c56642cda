// Package app implements the llm-proxy command line: it reads the
// configuration once and dispatches to the subcommands.
package app

import (
	"context"
	"fmt"
	"io"

	"github.com/llm-proxy/llm-proxy/shared/buildinfo"
	"github.com/llm-proxy/llm-proxy/shared/secrets"
)

const usageText = `llm-proxy — a transparent, secure proxy for the OpenAI API

Usage:
  llm-proxy serve                      start every function in one process (SQLite, in-memory parts)
  llm-proxy migrate up|down|status|version|rotate-keys
                                       manage the database schema and re-encrypt upstream keys
  llm-proxy manage project|token|audit|cache|usage …
                                       the management API client (llm-proxy manage --help)
  llm-proxy audit verify               check the audit trail's hash chain
  llm-proxy dispatch --service file|lunary|helicone|webhook …
                                       deliver request events from the Redis stream
  llm-proxy keygen                     print a new random ENCRYPTION_KEY (base64 of 32 bytes)
  llm-proxy version                    print version and commit

Every command takes --help. Configuration is read from environment variables;
see the README.
`

// Run executes the command line args and returns the process exit code.
// lookupEnv is os.LookupEnv in main and a map lookup in tests.
func Run(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "llm-proxy: missing command (run `llm-proxy --help` for usage)")
		return 2
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], lookupEnv, stdout, stderr)
	case "migrate":
		return runMigrate(ctx, args[1:], lookupEnv, stdout, stderr)
	case "manage":
		return runManage(ctx, args[1:], lookupEnv, stdout, stderr)
	case "audit":
		return runAudit(ctx, args[1:], lookupEnv, stdout, stderr)
	case "dispatch":
		return runDispatch(ctx, args[1:], lookupEnv, stdout, stderr)
	case "keygen":
		if len(args) > 1 {
			if isHelp(args[1]) {
				fmt.Fprintln(stdout, "usage: llm-proxy keygen\n\nprints a new random ENCRYPTION_KEY (standard base64 of 32 bytes)")
				return 0
			}
			fmt.Fprintln(stderr, "llm-proxy keygen takes no arguments (run `llm-proxy --help` for usage)")
			return 2
		}
		key, err := secrets.GenerateKey()
		if err != nil {
			fmt.Fprintln(stderr, "llm-proxy keygen:", err)
			return 1
		}
		fmt.Fprintln(stdout, key)
		return 0
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "llm-proxy %s (commit %s)\n", buildinfo.Version(), buildinfo.Commit())
		return 0
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usageText)
		return 0
	}
	fmt.Fprintf(stderr, "llm-proxy: unknown command %q (run `llm-proxy --help` for usage)\n", args[0])
	return 2
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	return arg == "--help" || arg == "-h" || arg == "help" || arg == "-help"
}
