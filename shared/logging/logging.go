// Package logging builds the process's log/slog logger from configuration.
package logging

import (
	"io"
	"log/slog"

	"github.com/llm-proxy/llm-proxy/shared/config"
)

// New returns a logger writing to w in the configured format and level.
// The configuration has been validated, so unknown values cannot occur.
func New(cfg config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
