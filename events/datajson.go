package events

import (
	"encoding/base64"
	"math"
	"strconv"
	"time"

	"github.com/llm-proxy/llm-proxy/shared/jsonscan"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

// appendJSON appends the bytes json.Marshal(d) returns, without
// reflection. It reports false (dst's contents past its length then
// undefined) for what it leaves to json.Marshal: a start time not in UTC or
// out of RFC 3339's years, a NaN or infinite number, invalid body JSON.
// TestRequestCompletedJSON checks it against json.Marshal, field by field.
func (d *RequestCompleted) appendJSON(dst []byte) ([]byte, bool) {
	dst = append(dst, `{"request_id":`...)
	dst = jsonscan.AppendString(dst, d.RequestID)
	if d.ClientRequestID != "" {
		dst = append(dst, `,"client_request_id":`...)
		dst = jsonscan.AppendString(dst, d.ClientRequestID)
	}
	dst = append(dst, `,"method":`...)
	dst = jsonscan.AppendString(dst, d.Method)
	dst = append(dst, `,"path":`...)
	dst = jsonscan.AppendString(dst, d.Path)
	dst = append(dst, `,"status":`...)
	dst = strconv.AppendInt(dst, int64(d.Status), 10)
	for _, f := range [...]struct{ name, v string }{
		{`,"error_code":`, d.ErrorCode}, {`,"project_id":`, d.ProjectID}, {`,"token_id":`, d.TokenID}, {`,"model":`, d.Model},
	} {
		if f.v != "" {
			dst = append(dst, f.name...)
			dst = jsonscan.AppendString(dst, f.v)
		}
	}
	dst = append(dst, `,"stream":`...)
	dst = strconv.AppendBool(dst, d.Stream)
	if d.CacheStatus != "" {
		dst = append(dst, `,"cache_status":`...)
		dst = jsonscan.AppendString(dst, d.CacheStatus)
	}
	var ok bool
	dst = append(dst, `,"started_at":`...)
	if dst, ok = appendTime(dst, d.StartedAt); !ok {
		return dst, false
	}
	dst = append(dst, `,"latency_ms":`...)
	if dst, ok = appendFloat(dst, d.LatencyMS); !ok {
		return dst, false
	}
	dst = append(dst, `,"ttfb_ms":`...)
	if dst, ok = appendFloat(dst, d.TTFBMS); !ok {
		return dst, false
	}
	if d.UpstreamLatencyMS != 0 {
		dst = append(dst, `,"upstream_latency_ms":`...)
		if dst, ok = appendFloat(dst, d.UpstreamLatencyMS); !ok {
			return dst, false
		}
	}
	dst = append(dst, `,"usage":`...)
	dst = appendUsage(dst, &d.Usage)
	if d.Request != nil {
		dst = append(dst, `,"request":`...)
		if dst, ok = d.Request.appendJSON(dst); !ok {
			return dst, false
		}
	}
	if d.Response != nil {
		dst = append(dst, `,"response":`...)
		if dst, ok = d.Response.appendJSON(dst); !ok {
			return dst, false
		}
	}
	return append(dst, '}'), true
}

// jsonSizeHint is about the length of d's JSON, so that appendJSON's
// buffer is allocated once.
func (d *RequestCompleted) jsonSizeHint() int {
	n := 420 + len(d.RequestID) + len(d.ClientRequestID) + len(d.Method) + len(d.Path) + len(d.ErrorCode) +
		len(d.ProjectID) + len(d.TokenID) + len(d.Model) + len(d.CacheStatus)
	for _, b := range []*Body{d.Request, d.Response} {
		if b != nil {
			n += 80 + len(b.ContentType) + len(b.JSON) + len(b.JSON)/16 + len(b.Base64)*4/3
		}
	}
	return n
}

func appendUsage(dst []byte, u *llmproxy.Usage) []byte {
	dst = append(dst, `{"prompt_tokens":`...)
	dst = strconv.AppendInt(dst, u.PromptTokens, 10)
	dst = append(dst, `,"completion_tokens":`...)
	dst = strconv.AppendInt(dst, u.CompletionTokens, 10)
	dst = append(dst, `,"total_tokens":`...)
	dst = strconv.AppendInt(dst, u.TotalTokens, 10)
	if u.CachedTokens != 0 {
		dst = append(dst, `,"cached_tokens":`...)
		dst = strconv.AppendInt(dst, u.CachedTokens, 10)
	}
	if u.ReasoningTokens != 0 {
		dst = append(dst, `,"reasoning_tokens":`...)
		dst = strconv.AppendInt(dst, u.ReasoningTokens, 10)
	}
	dst = append(dst, `,"source":`...)
	dst = jsonscan.AppendString(dst, string(u.Source))
	return append(dst, '}')
}

// appendJSON appends json.Marshal(b)'s bytes (see RequestCompleted's).
func (b *Body) appendJSON(dst []byte) ([]byte, bool) {
	dst = append(dst, '{')
	if b.ContentType != "" {
		dst = append(dst, `"content_type":`...)
		dst = jsonscan.AppendString(dst, b.ContentType)
		dst = append(dst, ',')
	}
	dst = append(dst, `"size":`...)
	dst = strconv.AppendInt(dst, int64(b.Size), 10)
	if b.Truncated {
		dst = append(dst, `,"truncated":true`...)
	}
	if b.Merged {
		dst = append(dst, `,"merged":true`...)
	}
	if len(b.JSON) > 0 {
		if !jsonscan.Valid(b.JSON) {
			return dst, false
		}
		dst = append(dst, `,"json":`...)
		dst = appendCompact(dst, b.JSON)
	}
	if len(b.Base64) > 0 {
		dst = append(dst, `,"base64":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, b.Base64)
		dst = append(dst, '"')
	}
	return append(dst, '}'), true
}

// appendTime appends time.Time's MarshalJSON for times it formats without
// error (years 0 to 9999) and in UTC (offset 0, written "Z").
func appendTime(dst []byte, t time.Time) ([]byte, bool) {
	if _, offset := t.Zone(); offset != 0 {
		return dst, false
	}
	if y := t.Year(); y < 0 || y > 9999 {
		return dst, false
	}
	dst = append(dst, '"')
	dst = t.AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"'), true
}

// appendFloat appends a float64 as encoding/json does (as ES6 formats
// numbers); false for NaN and infinities, which it rejects.
func appendFloat(dst []byte, f float64) ([]byte, bool) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return dst, false
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' { // e-09 to e-9
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst, true
}

// appendCompact appends the valid JSON text src as json.Marshal leaves the
// output of a MarshalJSON method or a json.RawMessage (encoding/json's
// compaction with HTML escaping): whitespace outside strings dropped, <, >,
// & and U+2028/U+2029 escaped, everything else as is. src must be valid
// JSON (jsonscan.Valid); the common case, nothing to change, is one copy.
func appendCompact(dst, src []byte) []byte {
	start := 0
	inString := false
	for i := 0; i < len(src); i++ {
		c := src[i]
		if !compactSpecial[c] {
			continue
		}
		switch {
		case c == '<' || c == '>' || c == '&':
			dst = append(dst, src[start:i]...)
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			start = i + 1
		case c == 0xE2 && i+2 < len(src) && src[i+1] == 0x80 && src[i+2]&^1 == 0xA8:
			dst = append(dst, src[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[src[i+2]&0xF])
			i += 2
			start = i + 1
		case inString:
			if c == '\\' {
				i++ // the escaped character: never special
			} else if c == '"' {
				inString = false
			}
		case c == '"':
			inString = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			dst = append(dst, src[start:i]...)
			start = i + 1
		}
	}
	return append(dst, src[start:]...)
}

// compactSpecial marks the bytes appendCompact looks at.
var compactSpecial = [256]bool{'"': true, '\\': true, '<': true, '>': true, '&': true, 0xE2: true, ' ': true, '\t': true, '\n': true, '\r': true}
