package app

import (
	"context"
	"io"

	"github.com/llm-proxy/llm-proxy/local/cli/auditcmd"
	"github.com/llm-proxy/llm-proxy/local/cli/dispatch"
	"github.com/llm-proxy/llm-proxy/local/cli/manage"
	"github.com/llm-proxy/llm-proxy/shared/logging"
)

// runManage is the management API client; it needs no server configuration.
func runManage(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) int {
	return manage.Run(ctx, args, getenv(lookupEnv), stdout, stderr)
}

func runAudit(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) int {
	cfg, ok := loadConfig(ctx, lookupEnv, stderr)
	if !ok {
		return 1
	}
	return auditcmd.Run(ctx, args, cfg, stdout, stderr)
}

func runDispatch(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) int {
	cfg, ok := loadConfig(ctx, lookupEnv, stderr)
	if !ok {
		return 1
	}
	log := logging.New(cfg.Log, stderr)
	defer logging.Flush(log)
	return dispatch.Run(ctx, args, cfg, log, stdout, stderr)
}
