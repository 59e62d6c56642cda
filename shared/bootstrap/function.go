package bootstrap

import (
	"context"
	"errors"
	"log/slog"

	"github.com/llm-proxy/llm-proxy/shared/audit"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/management"
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
	rt := platform.New(name, log, cfg.Server.ShutdownGrace, d.Checks()...)
	rt.OnDrain(d.Close)
	return &Function{Deps: d, Runtime: rt}, nil
}

// ErrNoManagementToken stops the functions that authenticate management
// requests when MANAGEMENT_TOKEN is unset.
var ErrNoManagementToken = errors.New("MANAGEMENT_TOKEN is required (e.g. openssl rand -base64 32, the same for every function)")

// OpenManagementFunction is OpenFunction for the functions that serve
// management actions (manage-projects, manage-tokens, admin-ui): it requires
// MANAGEMENT_TOKEN and builds the audit recorder.
func OpenManagementFunction(ctx context.Context, name string, cfg config.Config, log *slog.Logger) (*Function, *audit.Recorder, error) {
	if cfg.Server.ManagementToken == "" {
		return nil, nil, ErrNoManagementToken
	}
	f, err := OpenFunction(ctx, name, cfg, log)
	if err != nil {
		return nil, nil, err
	}
	rec, err := f.Audit()
	if err != nil {
		return nil, nil, err
	}
	return f, rec, nil
}

// ManagementService builds the management service of a deployable function:
// revocations invalidate every proxy through the bus, change events go to
// the configured bus (K_SINK on Knative and OpenFaaS).
func (f *Function) ManagementService(ctx context.Context, name string, rec *audit.Recorder) (*management.Service, error) {
	em, err := f.Emitter(name, nil)
	if err != nil {
		return nil, err
	}
	return f.Management(name, rec, f.Invalidation(ctx), em), nil
}
