package mgmtauth

import (
	"log/slog"

	"github.com/redis/go-redis/v9"

	"github.com/llm-proxy/llm-proxy/shared/audit"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/failbudget"
)

// SharedBudget is where the failure budget is kept and counted.
type SharedBudget struct {
	Redis     redis.UniversalClient // nil: in memory
	KeyPrefix string                // REDIS_KEY_PREFIX
	Metrics   *failbudget.Metrics   // may be nil
}

// Shared authenticates management API requests with verify, with the
// MANAGEMENT_AUTH_FAILURE_* budget in b.Redis (shared by every instance; nil:
// in this process) and counted in b.Metrics; denials are audited by rec.
func Shared(verify Verifier, cfg config.Audit, rec *audit.Recorder, b SharedBudget, log *slog.Logger) *Auth {
	return New(verify, Options{
		Recorder: rec, ActorName: audit.ActorManagementAPI, FailureLimit: cfg.AuthFailureLimit,
		GlobalFailureLimit: cfg.AuthGlobalFailureLimit, FailureWindow: cfg.AuthFailureWindow,
		Redis: b.Redis, KeyPrefix: b.KeyPrefix, Metrics: b.Metrics, Log: log,
	})
}
