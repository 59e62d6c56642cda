package events

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/llm-proxy/llm-proxy/shared/jsonscan"
)

// EncodeEvent renders ev as structured-mode CloudEvents JSON: the bytes of
// json.Marshal(ev) (see AppendEvent).
func EncodeEvent(ev *event.Event) ([]byte, error) {
	return AppendEvent(nil, ev)
}

// AppendEvent appends ev's structured-mode CloudEvents JSON to dst. The
// bytes are exactly those of json.Marshal(ev) — sdk-go's writer, then
// encoding/json's pass that compacts the output and escapes <, >, & and
// U+2028/U+2029 — which the file backend's lines, the Redis stream and the
// webhook bodies have always been.
//
// It writes CloudEvents 1.0 events with string extensions and JSON data
// (all that llm-proxy builds) in one pass, after checking that the data is
// valid JSON; anything else goes through json.Marshal. On error dst is
// returned unchanged.
func AppendEvent(dst []byte, ev *event.Event) ([]byte, error) {
	if out, ok := appendEventFast(dst, ev); ok {
		return out, nil
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return dst, fmt.Errorf("encode event %s: %w", ev.ID(), err)
	}
	return append(dst, b...), nil
}

// appendEventFast writes what event.WriteJson writes for a CloudEvents 1.0
// context, with the escaping encoding/json's compaction adds. It reports
// false, leaving dst's contents past len(dst) undefined, for anything it
// does not cover.
func appendEventFast(dst []byte, ev *event.Event) ([]byte, bool) {
	ec, ok := ev.Context.(*event.EventContextV1)
	if !ok || ev.DataBase64 {
		return dst, false
	}
	for _, v := range ec.Extensions {
		if _, ok := v.(string); !ok {
			return dst, false
		}
	}
	data := ev.DataEncoded
	if data != nil && (!dataIsJSON(ec.DataContentType) || !jsonscan.Valid(data)) {
		return dst, false
	}
	dst = append(dst, `{"specversion":"1.0","id":`...)
	dst = jsonscan.AppendStringVerbatim(dst, ec.ID)
	dst = append(dst, `,"source":`...)
	dst = jsonscan.AppendStringVerbatim(dst, sourceString(&ec.Source.URL))
	dst = append(dst, `,"type":`...)
	dst = jsonscan.AppendStringVerbatim(dst, ec.Type)
	if ec.Subject != nil {
		dst = append(dst, `,"subject":`...)
		dst = jsonscan.AppendStringVerbatim(dst, *ec.Subject)
	}
	if ec.DataContentType != nil {
		dst = append(dst, `,"datacontenttype":`...)
		dst = jsonscan.AppendStringVerbatim(dst, *ec.DataContentType)
	}
	if ec.DataSchema != nil {
		dst = append(dst, `,"dataschema":`...)
		dst = jsonscan.AppendStringVerbatim(dst, ec.DataSchema.String())
	}
	if ec.Time != nil {
		// types.Timestamp.String: UTC, RFC 3339 with nanoseconds; only
		// digits, letters and punctuation that need no escaping.
		dst = append(dst, `,"time":"`...)
		dst = ec.Time.Time.UTC().AppendFormat(dst, time.RFC3339Nano)
		dst = append(dst, '"')
	}
	if data != nil {
		dst = append(dst, `,"data":`...)
		dst = appendCompact(dst, data)
	}
	if len(ec.Extensions) > 0 {
		var names [8]string
		keys := names[:0]
		for k := range ec.Extensions {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			dst = append(dst, ',')
			dst = jsonscan.AppendStringVerbatim(dst, k) // sdk-go writes names as strings too
			dst = append(dst, ':')
			dst = jsonscan.AppendStringVerbatim(dst, ec.Extensions[k].(string))
		}
	}
	return append(dst, '}'), true
}

// lastSource is the source URI AppendEvent wrote last, with its text: a
// process emits from one or two sources, and url.URL.String escapes and
// rebuilds the text on every call.
var lastSource atomic.Pointer[cachedSource]

type cachedSource struct {
	u url.URL
	s string
}

func sourceString(u *url.URL) string {
	if c := lastSource.Load(); c != nil && c.u == *u {
		return c.s
	}
	c := &cachedSource{u: *u, s: u.String()}
	lastSource.Store(c)
	return c.s
}

// DataIsJSON reports whether ev's structured JSON holds its data as JSON
// (a JSON or no content type, not base64): encoding such an event
// (AppendEvent, json.Marshal) fails when the data is not valid JSON.
func DataIsJSON(ev *event.Event) bool {
	if ev.DataBase64 {
		return false
	}
	switch ec := ev.Context.(type) {
	case *event.EventContextV1:
		return dataIsJSON(ec.DataContentType)
	case *event.EventContextV03:
		return ec.DataContentEncoding == nil && dataIsJSON(ec.DataContentType)
	}
	return false
}

// dataIsJSON reports whether sdk-go writes data of this content type as
// raw JSON ("data") rather than as a string.
func dataIsJSON(ct *string) bool {
	if ct == nil {
		return true
	}
	mt := *ct
	if i := strings.IndexByte(mt, ';'); i >= 0 {
		mt = mt[:i]
	}
	switch strings.ToLower(strings.TrimSpace(mt)) {
	case event.ApplicationJSON, event.TextJSON, event.ApplicationCloudEventsJSON, event.ApplicationCloudEventsBatchJSON, "":
		return true
	}
	return false
}

const hexDigits = "0123456789abcdef"
