package mgmtauth

import (
	"log/slog"

	"github.com/llm-proxy/llm-proxy/shared/audit"
	"github.com/llm-proxy/llm-proxy/shared/config"
)

// FromConfig authenticates management API requests with verify, with the
// MANAGEMENT_AUTH_FAILURE_* budget; denials are audited by rec.
func FromConfig(verify Verifier, cfg config.Audit, rec *audit.Recorder, log *slog.Logger) *Auth {
	return New(verify, Options{
		Recorder: rec, ActorName: audit.ActorManagementAPI, FailureLimit: cfg.AuthFailureLimit,
		FailureWindow: cfg.AuthFailureWindow, Log: log,
	})
}
