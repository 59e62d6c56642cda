package events

import (
	"bytes"
	"encoding/json"
	"mime"
	"strings"
	"time"

	"github.com/llm-proxy/llm-proxy/shared/jsonscan"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

// RequestCompleted is the data of TypeRequestCompleted: one proxied request,
// rejected ones and cache hits included.
type RequestCompleted struct {
	RequestID         string         `json:"request_id"`
	ClientRequestID   string         `json:"client_request_id,omitempty"`
	Method            string         `json:"method"`
	Path              string         `json:"path"`
	Status            int            `json:"status"`
	ErrorCode         string         `json:"error_code,omitempty"`
	ProjectID         string         `json:"project_id,omitempty"`
	TokenID           string         `json:"token_id,omitempty"`
	Model             string         `json:"model,omitempty"`
	Stream            bool           `json:"stream"`
	CacheStatus       string         `json:"cache_status,omitempty"`
	StartedAt         time.Time      `json:"started_at"`
	LatencyMS         float64        `json:"latency_ms"`
	TTFBMS            float64        `json:"ttfb_ms"`
	UpstreamLatencyMS float64        `json:"upstream_latency_ms,omitempty"`
	Usage             llmproxy.Usage `json:"usage"`
	Request           *Body          `json:"request,omitempty"`
	Response          *Body          `json:"response,omitempty"`
}

// Body is a captured request or response body. A JSON body is embedded as
// JSON; anything else is base64. A streamed (SSE) response is merged into
// the object OpenAI would have answered without streaming (Merged is true).
type Body struct {
	ContentType string          `json:"content_type,omitempty"`
	Size        int             `json:"size"`                // bytes captured
	Truncated   bool            `json:"truncated,omitempty"` // the capture limit cut the body
	Merged      bool            `json:"merged,omitempty"`    // JSON was merged from a stream
	JSON        json.RawMessage `json:"json,omitempty"`
	Base64      []byte          `json:"base64,omitempty"`
}

// BuildRequestCompleted turns a finished request into event data. bodies
// false leaves the bodies out.
func BuildRequestCompleted(info *llmproxy.RequestInfo, bodies bool) *RequestCompleted {
	d := new(RequestCompleted)
	buildRequestCompleted(d, info, bodies)
	return d
}

// buildRequestCompleted fills d (the emitter's, on its stack).
func buildRequestCompleted(d *RequestCompleted, info *llmproxy.RequestInfo, bodies bool) {
	*d = RequestCompleted{
		RequestID:         info.RequestID,
		ClientRequestID:   info.ClientRequestID,
		Method:            info.Method,
		Path:              info.Path,
		Status:            info.Status,
		ErrorCode:         info.ErrorCode,
		ProjectID:         info.ProjectID,
		TokenID:           info.TokenID,
		Model:             info.Model,
		Stream:            info.Stream,
		CacheStatus:       info.CacheStatus,
		StartedAt:         info.Start.UTC(),
		LatencyMS:         ms(info.Duration),
		TTFBMS:            ms(info.TimeToFirstByte),
		UpstreamLatencyMS: ms(info.UpstreamLatency),
		Usage:             info.Usage,
	}
	if d.Usage.Source == "" {
		d.Usage.Source = llmproxy.UsageNone
	}
	if bodies {
		if len(info.RequestBody) > 0 {
			d.Request = requestBody(info.RequestBody, info.RequestTruncated)
		}
		if len(info.ResponseBody) > 0 {
			d.Response = responseBody(info.ResponseBody, info.ResponseContentType, info.ResponseTruncated)
		}
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func requestBody(b []byte, truncated bool) *Body {
	out := &Body{Size: len(b), Truncated: truncated}
	if !truncated && jsonscan.Valid(b) {
		out.ContentType = "application/json"
		out.JSON = compact(b)
		return out
	}
	out.Base64 = bytes.Clone(b)
	return out
}

func responseBody(b []byte, contentType string, truncated bool) *Body {
	out := &Body{ContentType: contentType, Size: len(b), Truncated: truncated}
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt == "text/event-stream" || (mt == "" && bytes.HasPrefix(bytes.TrimSpace(b), []byte("data:"))) {
		if merged, ok := MergeStream(b); ok {
			out.JSON = merged
			out.Merged = true
			return out
		}
	} else if !truncated && (mt == "" || mt == "application/json" || strings.HasSuffix(mt, "+json")) && jsonscan.Valid(b) {
		out.JSON = compact(b)
		return out
	}
	out.Base64 = bytes.Clone(b)
	return out
}

// compact returns a copy of the valid JSON b as json.Marshal embeds it:
// compact, with <, >, & and U+2028/U+2029 escaped.
func compact(b []byte) json.RawMessage {
	return appendCompact(make([]byte, 0, len(b)), b)
}
