// Package mgmtplane composes what the three management functions
// (manage-projects, manage-tokens, admin-ui) share over their resources:
// the audit recorder, the emitter of change events (to K_SINK), the
// management service, whose revocations reach every proxy through Redis,
// and the management-token authentication. Each main adds its handler.
// Only the management function mains import it.
package mgmtplane

import (
	"context"
	"log/slog"

	"github.com/llm-proxy/llm-proxy/events"
	"github.com/llm-proxy/llm-proxy/events/eventsconfig"
	"github.com/llm-proxy/llm-proxy/functions/internal/deployable"
	"github.com/llm-proxy/llm-proxy/shared/audit"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/management"
	"github.com/llm-proxy/llm-proxy/shared/mgmtauth"
	"github.com/llm-proxy/llm-proxy/shared/process"
	"github.com/llm-proxy/llm-proxy/shared/tokens"
)

// Plane is the management service of function name and what guards and
// records its actions.
type Plane struct {
	Service *management.Service
	// Auth checks MANAGEMENT_TOKEN on management API requests; Verify
	// checks one (the admin UI's sign-in).
	Auth   *mgmtauth.Auth
	Verify mgmtauth.Verifier

	recorder *audit.Recorder
	emitter  *events.Emitter
	log      *slog.Logger
}

// Open requires MANAGEMENT_TOKEN and builds the plane of function name on
// res. Close drains its event queue and closes the audit file.
func Open(ctx context.Context, name string, cfg config.Config, res *deployable.Resources, log *slog.Logger) (*Plane, error) {
	if err := cfg.Server.RequireManagementToken(); err != nil {
		return nil, err
	}
	rec, err := audit.Open(cfg.Audit, res.Store, res.Keyring, cfg.Server.TrustedProxyPrefixes(), log)
	if err != nil {
		return nil, err
	}
	pub, err := eventsconfig.NewFunctionPublisher(cfg.Events, res.RedisClient())
	if err != nil {
		_ = rec.Close()
		return nil, err
	}
	outbox := eventsconfig.NewFunctionOutbox(cfg, name, res.RedisClient(), log)
	emitter := eventsconfig.NewEmitter(cfg, name, pub, outbox, nil, log)
	verify := mgmtauth.StaticToken(cfg.Server.ManagementToken)
	return &Plane{
		Service: management.New(management.Deps{
			Store: res.Store, Keyring: res.Keyring, Audit: rec, Log: log,
			Invalidator: tokens.NewInvalidation(ctx, res.Redis, cfg.Redis.KeyPrefix+"tokens:invalidate", log),
			Changes:     events.Changes{Sink: emitter, Source: cfg.Events.SourceFor(name)},
		}),
		Auth: mgmtauth.Shared(verify, cfg.Audit, rec,
			mgmtauth.SharedBudget{Redis: res.RedisClient(), KeyPrefix: cfg.Redis.KeyPrefix}, log),
		Verify:   verify,
		recorder: rec, emitter: emitter, log: log,
	}, nil
}

// Close drains the change events, then closes the audit recorder.
func (p *Plane) Close() {
	process.Close(p.log, "event queue", p.emitter.Close)
	if err := p.recorder.Close(); err != nil {
		p.log.Error("close audit recorder", "error", err)
	}
}
