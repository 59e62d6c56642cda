package management

import (
	"context"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/llm-proxy/llm-proxy/events"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

// DefaultEventSource is the CloudEvents source of management change events
// when Deps.EventSource is empty.
const DefaultEventSource = "/llmproxy/functions/management"

// EventEmitter takes change events without blocking (*events.Emitter). An
// error means the event was dropped; the management action stands.
type EventEmitter interface {
	Emit(ctx context.Context, e event.Event) error
}

// EventErrors returns how many change events could not be built or handed
// to the emitter (each is also logged).
func (s *Service) EventErrors() uint64 { return s.eventErrors.Load() }

// Change events are emitted only after the change committed. Their id is
// the id of the audit record of the action (unique per fact, stable, and a
// key into GET /manage/audit/{id}); a bulk revocation emits one event per
// token with id "<audit record id>/<token id>". Actor and request id come
// from the audit record. They never carry an upstream key, a token or a
// token hash.

// emitProjectUpdated announces a created or changed project.
func (s *Service) emitProjectUpdated(ctx context.Context, rec llmproxy.AuditEvent, p llmproxy.Project, changed []string) {
	if s.events == nil {
		return
	}
	d := events.ProjectUpdated{
		ProjectID: p.ID, Action: rec.Action, Name: p.Name, IsActive: p.IsActive,
		Changed: append([]string(nil), changed...), Actor: rec.Actor, RequestID: rec.RequestID, At: rec.Timestamp,
	}
	e, err := events.NewProjectUpdatedEvent(s.source, rec.ID, d)
	s.emit(ctx, e, err)
}

// emitTokenCreated announces a new token (never the token itself).
func (s *Service) emitTokenCreated(ctx context.Context, rec llmproxy.AuditEvent, t llmproxy.Token) {
	if s.events == nil {
		return
	}
	d := events.TokenChanged{
		TokenID: t.ID, ProjectID: t.ProjectID, Action: rec.Action, ExpiresAt: t.ExpiresAt, MaxRequests: t.MaxRequests,
		Actor: rec.Actor, RequestID: rec.RequestID, At: rec.Timestamp,
	}
	e, err := events.NewTokenCreatedEvent(s.source, rec.ID, d)
	s.emit(ctx, e, err)
}

// emitTokensRevoked announces revoked tokens: one event with the record's
// id for a single revocation, one per token with id "<record id>/<token
// id>" when the action revoked tokens in bulk.
func (s *Service) emitTokensRevoked(ctx context.Context, rec llmproxy.AuditEvent, projectID string, tokenIDs []string, bulk bool) {
	if s.events == nil {
		return
	}
	for _, id := range tokenIDs {
		eid := rec.ID
		if bulk {
			eid = rec.ID + "/" + id
		}
		d := events.TokenChanged{
			TokenID: id, ProjectID: projectID, Action: rec.Action,
			Actor: rec.Actor, RequestID: rec.RequestID, At: rec.Timestamp,
		}
		e, err := events.NewTokenRevokedEvent(s.source, eid, d)
		s.emit(ctx, e, err)
	}
}

// emit hands e to the emitter; a failure is logged and counted, never
// returned: the change has been made and audited.
func (s *Service) emit(ctx context.Context, e event.Event, buildErr error) {
	err := buildErr
	if err == nil {
		err = s.events.Emit(context.WithoutCancel(ctx), e)
	}
	if err != nil {
		s.eventErrors.Add(1)
		s.log.WarnContext(ctx, "management change event dropped",
			"event_type", e.Type(), "event_id", e.ID(), "error", err)
	}
}
