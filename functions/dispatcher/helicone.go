package dispatcher

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/llm-proxy/llm-proxy/events"
)

// HeliconeBackend sends each request event to Helicone's custom logging API
// (POST /custom/v1/log with Authorization: Bearer <key>): providerRequest
// (the request JSON, metadata as string map), providerResponse (status,
// the response JSON with usage), and timing (start, end, time to first
// token).
type HeliconeBackend struct {
	Endpoint string
	APIKey   string
	Client   *http.Client
}

// Name implements Backend.
func (b *HeliconeBackend) Name() string { return ServiceHelicone }

// Accepts implements Backend: only request events.
func (b *HeliconeBackend) Accepts(t string) bool { return t == events.TypeRequestCompleted }

// HeliconeLog is the body of Helicone's custom log request.
type HeliconeLog struct {
	ProviderRequest  HeliconeRequest  `json:"providerRequest"`
	ProviderResponse HeliconeResponse `json:"providerResponse"`
	Timing           HeliconeTiming   `json:"timing"`
}

// HeliconeRequest is the logged request.
type HeliconeRequest struct {
	URL  string            `json:"url"`
	JSON map[string]any    `json:"json"`
	Meta map[string]string `json:"meta"`
}

// HeliconeResponse is the logged response.
type HeliconeResponse struct {
	Headers  map[string]string `json:"headers"`
	Status   int               `json:"status"`
	JSON     map[string]any    `json:"json,omitempty"`
	TextBody string            `json:"textBody,omitempty"`
}

// HeliconeTiming is the request's timing.
type HeliconeTiming struct {
	StartTime        HeliconeTime `json:"startTime"`
	EndTime          HeliconeTime `json:"endTime"`
	TimeToFirstToken *float64     `json:"timeToFirstToken,omitempty"`
}

// HeliconeTime is a time as seconds and milliseconds.
type HeliconeTime struct {
	Seconds      int64 `json:"seconds"`
	Milliseconds int64 `json:"milliseconds"`
}

func heliconeTime(t time.Time) HeliconeTime {
	return HeliconeTime{Seconds: t.Unix(), Milliseconds: int64(t.Nanosecond() / 1e6)}
}

// HeliconeLogFor maps one request event to Helicone's payload.
func HeliconeLogFor(rec Record) HeliconeLog {
	d := rec.Request
	reqJSON := map[string]any{}
	if d.Request != nil && len(d.Request.JSON) > 0 {
		_ = json.Unmarshal(d.Request.JSON, &reqJSON)
	}
	if _, ok := reqJSON["model"]; !ok && d.Model != "" {
		reqJSON["model"] = d.Model
	}
	meta := map[string]string{
		"request_id":                d.RequestID,
		"project_id":                d.ProjectID,
		"token_id":                  d.TokenID,
		"path":                      d.Path,
		"method":                    d.Method,
		"stream":                    strconv.FormatBool(d.Stream),
		"usage_source":              string(d.Usage.Source),
		"Helicone-User-Id":          d.TokenID,
		"Helicone-Property-Project": d.ProjectID,
	}
	if d.CacheStatus != "" {
		meta["cache_status"] = d.CacheStatus
	}
	if d.ClientRequestID != "" {
		meta["client_request_id"] = d.ClientRequestID
	}
	resp := HeliconeResponse{Headers: map[string]string{}, Status: d.Status}
	if d.Response != nil && len(d.Response.JSON) > 0 {
		m := map[string]any{}
		if json.Unmarshal(d.Response.JSON, &m) == nil {
			resp.JSON = m
		}
		resp.Headers["content-type"] = "application/json"
	} else if d.Response != nil && len(d.Response.Base64) > 0 {
		resp.TextBody = "response was not JSON; omitted"
	}
	if resp.JSON == nil {
		resp.JSON = map[string]any{}
	}
	if _, ok := resp.JSON["usage"]; !ok && d.Usage.Source != "none" {
		resp.JSON["usage"] = map[string]int64{
			"prompt_tokens":     d.Usage.PromptTokens,
			"completion_tokens": d.Usage.CompletionTokens,
			"total_tokens":      d.Usage.TotalTokens,
		}
	}
	end := d.StartedAt.Add(time.Duration(d.LatencyMS * float64(time.Millisecond)))
	timing := HeliconeTiming{StartTime: heliconeTime(d.StartedAt), EndTime: heliconeTime(end)}
	if d.TTFBMS > 0 {
		ttfb := d.TTFBMS
		timing.TimeToFirstToken = &ttfb
	}
	return HeliconeLog{
		ProviderRequest:  HeliconeRequest{URL: "custom-model-nopath", JSON: reqJSON, Meta: meta},
		ProviderResponse: resp,
		Timing:           timing,
	}
}

// Deliver implements Backend: one POST per event.
func (b *HeliconeBackend) Deliver(ctx context.Context, recs []Record) error {
	errs := make([]error, len(recs))
	failed := false
	for i, r := range recs {
		body, err := json.Marshal(HeliconeLogFor(r))
		if err != nil {
			err = events.Permanent(fmt.Errorf("encode helicone log: %w", err))
		} else {
			h := http.Header{}
			h.Set("Authorization", "Bearer "+b.APIKey)
			err = post(ctx, b.Client, b.Endpoint, body, h)
		}
		if err != nil {
			errs[i], failed = fmt.Errorf("helicone: %w", err), true
			if ctx.Err() != nil {
				break
			}
		}
	}
	if !failed {
		return nil
	}
	for i := range errs { // events not tried after a cancellation
		if errs[i] == nil && ctx.Err() != nil {
			errs[i] = ctx.Err()
		}
	}
	return &events.BatchError{Errs: errs}
}
