package sqlcore

import (
	"context"
	"errors"
	"fmt"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

// conflictMessages are the client-safe messages of uniqueness violations,
// by constraint.
var conflictMessages = map[string]string{
	"projects_name_key":     "a project with this name already exists",
	"projects_pkey":         "a project with this id already exists",
	"tokens_token_hash_key": "a token with this value already exists",
	"tokens_pkey":           "a token with this id already exists",
	"audit_events_pkey":     "an audit event with this id already exists",
	"settings_pkey":         "a setting with this key already exists",
}

func notFound(entity string) error {
	return llmproxy.E(llmproxy.ErrNotFound, llmproxy.CodeNotFound, entity+" not found")
}

// translate maps an engine error to a domain error; errors that already
// carry a domain kind pass unchanged. op names the operation for internal
// errors.
func (c *Core) translate(op, entity string, err error) error {
	if err == nil {
		return nil
	}
	var de *llmproxy.Error
	if errors.As(err, &de) {
		return err
	}
	kind, constraint := c.d.Classify(err)
	if kind == KindOther && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)) {
		kind = KindUnavailable
	}
	switch kind {
	case KindNotFound:
		return notFound(entity)
	case KindUnique:
		msg, ok := conflictMessages[constraint]
		if !ok {
			msg = "the " + entity + " conflicts with an existing one"
		}
		return llmproxy.Wrap(llmproxy.ErrConflict, llmproxy.CodeConflict, msg, err)
	case KindForeignKey:
		return llmproxy.Wrap(llmproxy.ErrNotFound, llmproxy.CodeNotFound, "project not found", err)
	case KindUnavailable:
		return llmproxy.Wrap(llmproxy.ErrUnavailable, llmproxy.CodeUnavailable, "database unavailable",
			fmt.Errorf("%s %s: %w", c.d.Name, op, err))
	}
	return fmt.Errorf("%s %s: %w", c.d.Name, op, err)
}
