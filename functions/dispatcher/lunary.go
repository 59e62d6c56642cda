package dispatcher

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/llm-proxy/llm-proxy/events"
)

// LunaryBackend sends request events to Lunary's ingest API
// (POST {"events":[…]} with Authorization: Bearer <key>), batched: each
// request becomes a run of type "llm" with a "start" event (input, model,
// params, user and metadata) and an "end" event (output, tokensUsage) — or
// an "error" event for a failed request. The runId is derived from the
// event's (source, id), so a resend updates the same run.
type LunaryBackend struct {
	Endpoint  string
	APIKey    string
	Client    *http.Client
	BatchSize int
}

// Name implements Backend.
func (b *LunaryBackend) Name() string { return ServiceLunary }

// Accepts implements Backend: only request events.
func (b *LunaryBackend) Accepts(t string) bool { return t == events.TypeRequestCompleted }

// LunaryEvent is one event of Lunary's run ingestion API.
type LunaryEvent struct {
	Type        string                     `json:"type"`
	Event       string                     `json:"event"`
	RunID       string                     `json:"runId"`
	Timestamp   string                     `json:"timestamp"`
	Name        string                     `json:"name,omitempty"`
	Input       json.RawMessage            `json:"input,omitempty"`
	Output      json.RawMessage            `json:"output,omitempty"`
	Params      map[string]json.RawMessage `json:"params,omitempty"`
	TokensUsage *LunaryTokens              `json:"tokensUsage,omitempty"`
	UserID      string                     `json:"userId,omitempty"`
	UserProps   map[string]string          `json:"userProps,omitempty"`
	Metadata    map[string]any             `json:"metadata,omitempty"`
	Tags        []string                   `json:"tags,omitempty"`
	Error       *LunaryError               `json:"error,omitempty"`
	Runtime     string                     `json:"runtime,omitempty"`
}

// LunaryTokens is Lunary's token usage.
type LunaryTokens struct {
	Prompt     int64 `json:"prompt"`
	Completion int64 `json:"completion"`
}

// LunaryError describes a failed run.
type LunaryError struct {
	Message string `json:"message"`
}

// LunaryEvents maps one request event to its Lunary start and end (or
// error) events.
func LunaryEvents(rec Record) []LunaryEvent {
	d := rec.Request
	runID := uuid.NewSHA1(uuid.NameSpaceURL, []byte(Key(&rec.Event))).String()
	req := bodyJSON(d.Request)
	resp := bodyJSON(d.Response)
	meta := map[string]any{
		"request_id":   d.RequestID,
		"project_id":   d.ProjectID,
		"token_id":     d.TokenID,
		"method":       d.Method,
		"path":         d.Path,
		"status":       d.Status,
		"stream":       d.Stream,
		"latency_ms":   d.LatencyMS,
		"ttfb_ms":      d.TTFBMS,
		"usage_source": string(d.Usage.Source),
	}
	if d.CacheStatus != "" {
		meta["cache_status"] = d.CacheStatus
	}
	if d.ClientRequestID != "" {
		meta["client_request_id"] = d.ClientRequestID
	}
	start := LunaryEvent{
		Type: "llm", Event: "start", RunID: runID,
		Timestamp: d.StartedAt.UTC().Format(time.RFC3339Nano),
		Name:      d.Model,
		Input:     llmInput(req),
		Params:    llmParams(req),
		UserID:    d.TokenID,
		UserProps: map[string]string{"project_id": d.ProjectID},
		Metadata:  meta,
		Tags:      []string{"llm-proxy", d.Path},
		Runtime:   "llm-proxy",
	}
	if len(start.Params) == 0 {
		start.Params = nil
	}
	end := LunaryEvent{
		Type: "llm", Event: "end", RunID: runID,
		Timestamp: d.StartedAt.Add(time.Duration(d.LatencyMS * float64(time.Millisecond))).UTC().Format(time.RFC3339Nano),
		Name:      d.Model,
		TokensUsage: &LunaryTokens{
			Prompt: d.Usage.PromptTokens, Completion: d.Usage.CompletionTokens,
		},
		Metadata: meta,
	}
	var raw json.RawMessage
	if d.Response != nil {
		raw = d.Response.JSON
	}
	end.Output = llmOutput(resp, raw)
	if d.Status >= 400 {
		end.Event = "error"
		msg := "HTTP " + strconv.Itoa(d.Status)
		if d.ErrorCode != "" {
			msg += ": " + d.ErrorCode
		}
		end.Error = &LunaryError{Message: msg}
	}
	return []LunaryEvent{start, end}
}

// Deliver implements Backend: one POST per BatchSize records.
func (b *LunaryBackend) Deliver(ctx context.Context, recs []Record) error {
	errs := make([]error, len(recs))
	failed := false
	size := max(b.BatchSize, 1)
	for lo := 0; lo < len(recs); lo += size {
		hi := min(lo+size, len(recs))
		var batch []LunaryEvent
		for _, r := range recs[lo:hi] {
			batch = append(batch, LunaryEvents(r)...)
		}
		body, err := json.Marshal(struct {
			Events []LunaryEvent `json:"events"`
		}{batch})
		if err != nil {
			err = events.Permanent(fmt.Errorf("encode lunary batch: %w", err))
		} else {
			h := http.Header{}
			h.Set("Authorization", "Bearer "+b.APIKey)
			err = post(ctx, b.Client, b.Endpoint, body, h)
		}
		if err != nil {
			failed = true
			for i := lo; i < hi; i++ {
				errs[i] = fmt.Errorf("lunary: %w", err)
			}
		}
	}
	if !failed {
		return nil
	}
	return &events.BatchError{Errs: errs}
}
