// Command llm-proxy is the single binary: `serve` hosts every function in one
// process on the embedded default (SQLite, in-memory parts); `migrate`,
// `manage`, `audit`, `dispatch` and `version` are the operator's tools.
package main

import (
	"context"
	"os"

	"github.com/llm-proxy/llm-proxy/local/app"
	"github.com/llm-proxy/llm-proxy/shared/process"
)

func main() {
	ctx, stop := process.SignalContext(context.Background())
	code := app.Run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
