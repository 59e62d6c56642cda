package management

import (
	"context"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

// ChangeSink takes committed changes without blocking (events.Changes over
// the process's event emitter). An error means the change was not
// announced; the management action stands.
type ChangeSink interface {
	Changed(ctx context.Context, c llmproxy.Change) error
}

// EventErrors returns how many changes could not be announced (each is also
// logged).
func (s *Service) EventErrors() uint64 { return s.eventErrors.Load() }

// Changes are announced only after they committed. Their id is the id of
// the audit record of the action (unique per fact, stable, and a key into
// GET /manage/audit/{id}); a bulk revocation announces one change per token
// with id "<audit record id>/<token id>". Actor and request id come from the
// audit record. They never carry an upstream key, a token or a token hash.

// announceProjectUpdated announces a created or changed project.
func (s *Service) announceProjectUpdated(ctx context.Context, rec llmproxy.AuditEvent, p llmproxy.Project, changed []string) {
	s.announce(ctx, llmproxy.Change{
		Kind: llmproxy.ChangeProjectUpdated, ID: rec.ID, Action: rec.Action, ProjectID: p.ID,
		Name: p.Name, IsActive: p.IsActive, Changed: changed,
		Actor: rec.Actor, RequestID: rec.RequestID, At: rec.Timestamp,
	})
}

// announceTokenCreated announces a new token (never the token itself).
func (s *Service) announceTokenCreated(ctx context.Context, rec llmproxy.AuditEvent, t llmproxy.Token) {
	s.announce(ctx, llmproxy.Change{
		Kind: llmproxy.ChangeTokenCreated, ID: rec.ID, Action: rec.Action, ProjectID: t.ProjectID, TokenID: t.ID,
		ExpiresAt: t.ExpiresAt, MaxRequests: t.MaxRequests,
		Actor: rec.Actor, RequestID: rec.RequestID, At: rec.Timestamp,
	})
}

// announceTokensRevoked announces revoked tokens: one change with the
// record's id for a single revocation, one per token with id "<record
// id>/<token id>" when the action revoked tokens in bulk.
func (s *Service) announceTokensRevoked(ctx context.Context, rec llmproxy.AuditEvent, projectID string, tokenIDs []string, bulk bool) {
	for _, id := range tokenIDs {
		cid := rec.ID
		if bulk {
			cid = rec.ID + "/" + id
		}
		s.announce(ctx, llmproxy.Change{
			Kind: llmproxy.ChangeTokenRevoked, ID: cid, Action: rec.Action, ProjectID: projectID, TokenID: id,
			Actor: rec.Actor, RequestID: rec.RequestID, At: rec.Timestamp,
		})
	}
}

// announce hands c to the sink; a failure is logged and counted, never
// returned: the change has been made and audited.
func (s *Service) announce(ctx context.Context, c llmproxy.Change) {
	if s.changes == nil {
		return
	}
	if err := s.changes.Changed(ctx, c); err != nil {
		s.eventErrors.Add(1)
		s.log.WarnContext(ctx, "management change event dropped", "change", c.Kind, "change_id", c.ID, "error", err)
	}
}
