package bootstrap

import (
	"context"
	"errors"
	"log/slog"

	"github.com/llm-proxy/llm-proxy/shared/audit"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/management"
	"github.com/llm-proxy/llm-proxy/shared/mgmtauth"
	"github.com/llm-proxy/llm-proxy/shared/platform"
)

// Function is what a deployable function starts with: its dependencies and
// the runtime that serves it (health, readiness over those dependencies,
// drain on SIGTERM, then Close).
type Function struct {
	*Deps
	Runtime *platform.Runtime
}

// OpenFunction opens the shared dependencies of the deployable function name.
func OpenFunction(ctx context.Context, name string, cfg config.Config, log *slog.Logger) (*Function, error) {
	d, err := Open(ctx, cfg, log, Options{})
	if err != nil {
		return nil, err
	}
	rt := platform.New(name, log, cfg.Server, d.Checks()...)
	rt.OnDrain(d.Close)
	return &Function{Deps: d, Runtime: rt}, nil
}

// ErrNoManagementToken stops the functions that authenticate management
// requests when MANAGEMENT_TOKEN is unset.
var ErrNoManagementToken = errors.New("MANAGEMENT_TOKEN is required (e.g. openssl rand -base64 32, the same for every function)")

// ManagementFunction is a deployable that serves management actions
// (manage-projects, manage-tokens, admin-ui).
type ManagementFunction struct {
	*Function
	Recorder *audit.Recorder
	Service  *management.Service
	// Auth checks MANAGEMENT_TOKEN on management API requests.
	Auth *mgmtauth.Auth
	// Verify checks a management token (the admin UI's sign-in).
	Verify mgmtauth.Verifier
}

// OpenManagementFunction is OpenFunction for the functions that serve
// management actions: it requires MANAGEMENT_TOKEN and builds the audit
// recorder, the management service (revocations invalidate every proxy
// through the bus; change events go to the configured bus, K_SINK on Knative
// and OpenFaaS) and the management authentication.
func OpenManagementFunction(ctx context.Context, name string, cfg config.Config, log *slog.Logger) (*ManagementFunction, error) {
	if cfg.Server.ManagementToken == "" {
		return nil, ErrNoManagementToken
	}
	f, err := OpenFunction(ctx, name, cfg, log)
	if err != nil {
		return nil, err
	}
	rec, err := f.Audit()
	if err != nil {
		return nil, err
	}
	em, err := f.Emitter(name, nil)
	if err != nil {
		return nil, err
	}
	verify := mgmtauth.StaticToken(cfg.Server.ManagementToken)
	return &ManagementFunction{
		Function: f, Recorder: rec, Verify: verify,
		Service: f.Management(name, rec, f.Invalidation(ctx), em),
		Auth:    f.ManagementAuth(verify, rec, "management_api"),
	}, nil
}
