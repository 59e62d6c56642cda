package llmproxy

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Bounds of an audit record's fields, in bytes. Much of a record comes from
// the request (the path, the user agent, ids in the URL, the client's request
// id, a submitted name echoed in a validation error), and an unauthenticated
// request is recorded too, so every text field is cut at its bound with
// TruncationMarker: one request can never write more than a few kilobytes.
const (
	MaxAuditIDBytes      = 128  // id, action, actor, project and token ids, request and correlation ids
	MaxAuditMethodBytes  = 16   // HTTP method
	MaxAuditIPBytes      = 64   // client IP
	MaxAuditPathBytes    = 1024 // request path
	MaxAuditUABytes      = 512  // user agent
	MaxAuditReasonBytes  = 1024 // reason
	MaxAuditDetailString = 1024 // every string inside details
	MaxAuditDetailsBytes = 16 << 10
)

// TruncationMarker ends a value cut at its bound; %d is the original length.
const TruncationMarker = "…[truncated, %d bytes]"

// BoundText returns s as valid UTF-8 without NUL bytes (neither can be
// stored in a PostgreSQL TEXT column; each becomes U+FFFD) and at most max
// bytes long plus TruncationMarker when it was longer, cut at a rune boundary.
func BoundText(s string, max int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	}
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf(TruncationMarker, len(s))
}

// Bounded returns e with every text field within its bound (see the Max*
// constants) and details bounded: each string cut at MaxAuditDetailString,
// and details whose JSON exceeds MaxAuditDetailsBytes replaced by a note. The
// store applies it before sealing, so what is hashed is what is kept.
func (e AuditEvent) Bounded() AuditEvent {
	for _, f := range []struct {
		p   *string
		max int
	}{
		{&e.ID, MaxAuditIDBytes}, {&e.Action, MaxAuditIDBytes}, {&e.Actor, MaxAuditIDBytes},
		{&e.ProjectID, MaxAuditIDBytes}, {&e.TokenID, MaxAuditIDBytes}, {&e.RequestID, MaxAuditIDBytes},
		{&e.CorrelationID, MaxAuditIDBytes}, {&e.ClientIP, MaxAuditIPBytes}, {&e.Method, MaxAuditMethodBytes},
		{&e.Path, MaxAuditPathBytes}, {&e.UserAgent, MaxAuditUABytes}, {&e.Reason, MaxAuditReasonBytes},
	} {
		*f.p = BoundText(*f.p, f.max)
	}
	if e.Details != nil {
		d := MapDetails(e.Details,
			func(k string) string { return BoundText(k, MaxAuditIDBytes) },
			func(v string) string { return BoundText(v, MaxAuditDetailString) })
		if b, err := json.Marshal(d); err != nil || len(b) > MaxAuditDetailsBytes {
			d = map[string]any{"note": fmt.Sprintf("details omitted: %d bytes exceed the %d-byte bound", len(b), MaxAuditDetailsBytes)}
		}
		e.Details = d
	}
	return e
}

// MapDetails returns a copy of details with key applied to every map key
// and val to every string value, at any depth (maps, []any, []string).
func MapDetails(details map[string]any, key, val func(string) string) map[string]any {
	out, _ := mapStrings(details, key, val).(map[string]any)
	return out
}

func mapStrings(v any, key, val func(string) string) any {
	switch x := v.(type) {
	case string:
		return val(x)
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, v := range x {
			out[key(k)] = mapStrings(v, key, val)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, v := range x {
			out[i] = mapStrings(v, key, val)
		}
		return out
	case []string:
		out := make([]string, len(x))
		for i, v := range x {
			out[i] = val(v)
		}
		return out
	}
	return v
}

// EscapeControl returns s with every character that a terminal or a reader
// could take for something else written as an escape: C0 and C1 controls and
// DEL as \xNN (\t, \n, \r included), the bidirectional controls (U+200E,
// U+200F, U+202A–U+202E, U+2066–U+2069) as \uNNNN, invalid UTF-8 bytes as \xNN,
// and a backslash as \\ so that an escape cannot be forged. Everything else,
// non-ASCII letters included, is kept. Human-readable outputs of audit records
// (the CLI's tables, the admin UI) show values through it.
func EscapeControl(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r >= 0x80 && r <= 0x9f, isBidiControl(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func needsEscape(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f || c == '\\' {
				return true
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && n == 1) || (r >= 0x80 && r <= 0x9f) || isBidiControl(r) {
			return true
		}
		i += n
	}
	return false
}

func isBidiControl(r rune) bool {
	return r == 0x200e || r == 0x200f || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069)
}
