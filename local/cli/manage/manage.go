// Package manage is the `llm-proxy manage` command: a client of the
// management API for projects, tokens, audit events and the response cache.
//
//	llm-proxy manage [global flags] project list|get|create|update|activate|deactivate|revoke-tokens|delete
//	llm-proxy manage [global flags] token generate|list|get|update|revoke
//	llm-proxy manage [global flags] audit list|get
//	llm-proxy manage [global flags] cache purge
//	llm-proxy manage [global flags] usage show
//
// Global flags (anywhere on the line): --manage-api-base-url (default
// http://localhost:8080, or MANAGEMENT_API_BASE_URL), --management-token (or
// MANAGEMENT_TOKEN), --json (print the API's JSON instead of a table).
//
// Exit codes: 0 success, 1 the API or the network failed, 2 usage error.
package manage

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Exit codes.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
)

// DefaultBaseURL is where `llm-proxy serve` listens by default.
const DefaultBaseURL = "http://localhost:8080"

const usageText = `Usage: llm-proxy manage [flags] <resource> <action> [args]

Resources and actions:
  project list [--search S] [--active-only] [--page N] [--page-size N]
  project get <id>
  project create --name NAME --api-key KEY [LIMITS] [TOKEN DEFAULTS]
  project update <id> [--name NAME] [--api-key KEY] [--active true|false] [LIMITS] [TOKEN DEFAULTS]
  project activate <id>
  project deactivate <id> [--revoke-tokens]
  project revoke-tokens <id>
  project delete <id>                 (always refused: projects are deactivated, not deleted)
  token generate --project-id ID [--duration 1440|24h|30d] [--expires-at RFC3339] [--max-requests N] [LIMITS]
  token list [--project-id ID] [--active-only] [--page N] [--page-size N]
  token get <id>
  token update <id> [--active true|false] [--max-requests N] [--expires-at RFC3339|never] [LIMITS]
  token revoke <id>
  audit list [--action A] [--outcome O] [--actor A] [--project-id ID] [--token-id ID] [--client-ip IP]
             [--request-id ID] [--method M] [--path P] [--start-time T] [--end-time T] [--search S]
             [--page N] [--page-size N]
  audit get <id>
  cache purge (--all | --project-id ID [--method M --path P [--body JSON]])
  usage show [--window 24h|7d] [--project-id ID]   requests, cache hits and model tokens per project

Limits (N >= 0, 0 means unlimited; a flag not given leaves that limit as it is):
  LIMITS          the project's own limits (a cap on the sum over its tokens) or the token's:
                  --requests-per-minute N --requests-per-day N --tokens-per-minute N --tokens-per-day N
  TOKEN DEFAULTS  limits given to new tokens of the project:
                  --token-default-requests-per-minute N --token-default-requests-per-day N
                  --token-default-tokens-per-minute N --token-default-tokens-per-day N
  A new token without limit flags gets the project's token defaults; limit flags given to
  token generate override those defaults one by one. "tokens" are model tokens. The API
  replaces a limits object as a whole, so update and generate read the current values first.

Flags (anywhere on the line):
  --manage-api-base-url URL   management API (default http://localhost:8080, env MANAGEMENT_API_BASE_URL)
  --management-token TOKEN    management token (env MANAGEMENT_TOKEN)
  --json                      print JSON instead of tables
`

// usageError is a mistake on the command line (exit 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// globals are the flags every subcommand accepts.
type globals struct {
	baseURL string
	token   string
	json    bool
	// publicURL is PUBLIC_BASE_URL: where clients reach the proxy, shown
	// after token generate (empty: baseURL's origin).
	publicURL string
}

func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.baseURL, "manage-api-base-url", g.baseURL, "management API base URL")
	fs.StringVar(&g.token, "management-token", g.token, "management token")
	fs.BoolVar(&g.json, "json", g.json, "print JSON")
}

// Run executes `llm-proxy manage` with args (without "manage") and returns
// the exit code.
func Run(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) int {
	if env == nil {
		env = func(string) string { return "" }
	}
	g := &globals{baseURL: DefaultBaseURL}
	if v := env("MANAGEMENT_API_BASE_URL"); v != "" {
		g.baseURL = v
	}
	g.token = env("MANAGEMENT_TOKEN")
	g.publicURL = env("PUBLIC_BASE_URL")
	err := run(ctx, g, args, stdout)
	var ue usageError
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, usageText)
		return ExitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "llm-proxy manage: %s (run `llm-proxy manage --help` for usage)\n", ue.msg)
		return ExitUsage
	}
	fmt.Fprintf(stderr, "llm-proxy manage: %s\n", err)
	return ExitError
}

// parse parses flags and positional arguments in any order.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usagef("%v", err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if rest[0] == "--" {
			return append(pos, rest[1:]...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func run(ctx context.Context, g *globals, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("manage", flag.ContinueOnError)
	g.register(fs)
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usagef("%v", err)
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return usagef("missing resource (project, token, audit, cache or usage)")
	}
	if rest[0] == "help" {
		return flag.ErrHelp
	}
	if len(rest) < 2 {
		return usagef("missing action for %q", rest[0])
	}
	resource, action, rest := rest[0], rest[1], rest[2:]
	cmd, ok := commands[resource+" "+action]
	if !ok {
		return usagef("unknown command %q", resource+" "+action)
	}
	sub := flag.NewFlagSet(resource+" "+action, flag.ContinueOnError)
	g.register(sub)
	c := &call{g: g, out: stdout}
	body := cmd.flags(sub)
	pos, err := parse(sub, rest)
	if err != nil {
		return err
	}
	if len(pos) != cmd.args {
		if cmd.args == 0 {
			return usagef("%s %s takes no arguments, got %q", resource, action, strings.Join(pos, " "))
		}
		return usagef("%s %s needs %s", resource, action, cmd.argName)
	}
	if g.token == "" {
		return usagef("a management token is required: --management-token or MANAGEMENT_TOKEN")
	}
	if !strings.HasPrefix(g.baseURL, "http://") && !strings.HasPrefix(g.baseURL, "https://") {
		return usagef("--manage-api-base-url must start with http:// or https://")
	}
	c.client = &http.Client{Timeout: 30 * time.Second}
	return body(ctx, c, pos)
}

// openAIBaseURL is the proxy's OpenAI base URL for the token generate hint:
// PUBLIC_BASE_URL + /v1, else the management API's origin + /v1 (serve
// answers both on one host).
func (g *globals) openAIBaseURL() string {
	if g.publicURL != "" {
		return strings.TrimRight(g.publicURL, "/") + "/v1"
	}
	u, err := url.Parse(g.baseURL)
	if err != nil || u.Host == "" {
		return strings.TrimRight(g.baseURL, "/") + "/v1"
	}
	return u.Scheme + "://" + u.Host + "/v1"
}
