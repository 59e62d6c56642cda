package app

import (
	"context"
	"fmt"
	"io"

	"github.com/sethvargo/go-envconfig"

	"github.com/llm-proxy/llm-proxy/shared/config"
)

// loadConfig reads and validates the configuration; on error it prints one
// line to stderr.
func loadConfig(ctx context.Context, lookupEnv func(string) (string, bool), stderr io.Writer) (config.Config, bool) {
	cfg, err := config.Load(ctx, envconfig.LookuperFunc(lookupEnv))
	if err != nil {
		fmt.Fprintln(stderr, "llm-proxy:", err)
		return config.Config{}, false
	}
	return cfg, true
}

// getenv adapts lookupEnv to the os.Getenv shape.
func getenv(lookupEnv func(string) (string, bool)) func(string) string {
	return func(k string) string {
		v, _ := lookupEnv(k)
		return v
	}
}
