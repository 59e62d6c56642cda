package sqlcore

import "github.com/llm-proxy/llm-proxy/shared/llmproxy"

func eventWith(d map[string]any) llmproxy.AuditEvent {
	return llmproxy.AuditEvent{Action: "a", Outcome: llmproxy.OutcomeSuccess, Details: d}
}
