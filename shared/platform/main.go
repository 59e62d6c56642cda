package platform

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/sethvargo/go-envconfig"

	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/logging"
)

// Main is the body of every function's main: it reads and validates the
// configuration from the environment, builds the logger, runs run, and exits
// non-zero with one clear line when either fails.
func Main(name string, run func(ctx context.Context, cfg config.Config, log *slog.Logger) error) {
	// FUNCTION_TARGET (set by the image and the manifests) names the
	// function; a mismatch is a deployment mistake, stopped before anything
	// is opened.
	if t := os.Getenv("FUNCTION_TARGET"); t != "" && t != name {
		fmt.Fprintf(os.Stderr, "%s: FUNCTION_TARGET=%s, but this image is the %s function\n", name, t, name)
		os.Exit(1)
	}
	ctx := context.Background()
	cfg, err := config.Load(ctx, envconfig.OsLookuper())
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
	log := logging.New(cfg.Log, os.Stderr).With("function", name)
	if err := run(ctx, cfg, log); err != nil {
		log.Error("function stopped", "error", err)
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
	logging.Flush(log)
}

// Port is PORT, or 8080 (the Knative and OpenFaaS default) when unset.
func Port(cfg config.Config) string {
	if cfg.Server.Port != "" {
		return cfg.Server.Port
	}
	return "8080"
}
