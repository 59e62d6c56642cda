package events

import (
	"context"
	"fmt"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

// DefaultChangeSource is the CloudEvents source of management change events
// when Changes.Source is empty.
const DefaultChangeSource = "/llmproxy/functions/management"

// Changes turns committed management changes into CloudEvents
// (project.updated, token.created, token.revoked) and hands them to Sink,
// usually an *Emitter. It is the management service's change sink.
type Changes struct {
	Sink interface {
		Emit(ctx context.Context, e event.Event) error
	}
	Source string // CloudEvents source (DefaultChangeSource when empty)
}

// Changed builds the change's event and emits it. The event id is the
// change's id; actor and request id come from it too.
func (c Changes) Changed(ctx context.Context, ch llmproxy.Change) error {
	source := c.Source
	if source == "" {
		source = DefaultChangeSource
	}
	var (
		e   event.Event
		err error
	)
	switch ch.Kind {
	case llmproxy.ChangeProjectUpdated:
		e, err = NewProjectUpdatedEvent(source, ch.ID, ProjectUpdated{
			ProjectID: ch.ProjectID, Action: ch.Action, Name: ch.Name, IsActive: ch.IsActive,
			Changed: append([]string(nil), ch.Changed...), Actor: ch.Actor, RequestID: ch.RequestID, At: ch.At,
		})
	case llmproxy.ChangeTokenCreated, llmproxy.ChangeTokenRevoked:
		d := TokenChanged{
			TokenID: ch.TokenID, ProjectID: ch.ProjectID, Action: ch.Action, ExpiresAt: ch.ExpiresAt, MaxRequests: ch.MaxRequests,
			Actor: ch.Actor, RequestID: ch.RequestID, At: ch.At,
		}
		if ch.Kind == llmproxy.ChangeTokenCreated {
			e, err = NewTokenCreatedEvent(source, ch.ID, d)
		} else {
			e, err = NewTokenRevokedEvent(source, ch.ID, d)
		}
	default:
		return fmt.Errorf("change %s: unknown kind %q", ch.ID, ch.Kind)
	}
	if err != nil {
		return fmt.Errorf("change %s: build event: %w", ch.ID, err)
	}
	return c.Sink.Emit(context.WithoutCancel(ctx), e)
}
