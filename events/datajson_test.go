package events

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

// checkDataJSON fails unless the event data of d is json.Marshal(d), and
// the one-pass encoder, when it takes d (fast says whether it must), writes
// the same.
func checkDataJSON(t *testing.T, d *RequestCompleted, fast bool) {
	t.Helper()
	want, wantErr := json.Marshal(d)
	got, ok := d.appendJSON([]byte("x"))
	if ok != fast {
		t.Errorf("one-pass encoder took it: %v, want %v", ok, fast)
	}
	if ok && (wantErr != nil || !bytes.Equal(got[1:], want)) {
		t.Fatalf("appendJSON differs from json.Marshal (error %v):\n got %s\nwant %s", wantErr, got[1:], want)
	}
	ev, err := NewRequestCompletedEvent(DefaultSource, d)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("event error %v, json.Marshal's %v", err, wantErr)
	}
	if err == nil && !bytes.Equal(ev.Data(), want) {
		t.Fatalf("event data differs from json.Marshal:\n got %s\nwant %s", ev.Data(), want)
	}
}

func TestRequestCompletedJSON(t *testing.T) {
	info := sampleInfo("r1")
	streamed := sampleInfo("r2")
	streamed.ResponseContentType = "text/event-stream"
	streamed.ResponseBody = []byte("data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"<b>\u2028\"}}]}\n\ndata: [DONE]\n\n")
	binary := sampleInfo("r3")
	binary.RequestBody, binary.RequestTruncated = []byte("\x00\x01 not json <>"), true
	binary.ResponseBody, binary.ResponseContentType = []byte("plain text"), "text/plain"
	awkward := sampleInfo("id \"<&>\" \\ \b\f\n\r\t\x01\x1f\x7f é € \u2028\u2029 \xff\xfe end")
	awkward.ClientRequestID, awkward.ErrorCode, awkward.CacheStatus = "c\u2029", "e<1>", "hit&"
	awkward.Usage.CachedTokens, awkward.Usage.ReasoningTokens = 3, 4
	awkward.RequestBody = []byte("{\n  \"messages\": [ {\"content\": \"a<b & c>d \u2028 \\u003c\"} ],\t\"x\" : null }")

	for _, tc := range []struct {
		name   string
		d      *RequestCompleted
		bodies bool
	}{
		{"without bodies", BuildRequestCompleted(info, false), true},
		{"with bodies", BuildRequestCompleted(info, true), true},
		{"merged stream", BuildRequestCompleted(streamed, true), true},
		{"base64 bodies", BuildRequestCompleted(binary, true), true},
		{"awkward strings", BuildRequestCompleted(awkward, true), true},
		{"zero", &RequestCompleted{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) { checkDataJSON(t, tc.d, tc.bodies) })
	}

	for _, f := range []float64{0, math.Copysign(0, -1), 1, -1, 0.001, 123.456, 1e-6, 9.99e-7, 1e-7, 1.5e-10, 1e20, 1e21, 1.2345e22,
		-1e21, 5e-324, math.MaxFloat64, 1234567.891, 0.1 + 0.2} {
		d := BuildRequestCompleted(info, false)
		d.LatencyMS, d.TTFBMS, d.UpstreamLatencyMS = f, -f, f
		t.Run("float "+strings.ReplaceAll(json.Number(mustMarshal(t, f)).String(), ".", "_"), func(t *testing.T) { checkDataJSON(t, d, true) })
	}

	// Left to json.Marshal: same result (or the same failure).
	for name, change := range map[string]func(d *RequestCompleted){
		"NaN":               func(d *RequestCompleted) { d.LatencyMS = math.NaN() },
		"infinity":          func(d *RequestCompleted) { d.UpstreamLatencyMS = math.Inf(-1) },
		"time not in UTC":   func(d *RequestCompleted) { d.StartedAt = d.StartedAt.In(time.FixedZone("X", 3600)) },
		"year 10000":        func(d *RequestCompleted) { d.StartedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
		"invalid body JSON": func(d *RequestCompleted) { d.Request.JSON = json.RawMessage(`{"a":`) },
	} {
		d := BuildRequestCompleted(info, true)
		change(d)
		t.Run(name, func(t *testing.T) { checkDataJSON(t, d, false) })
	}
	// UTC under another name and a zero offset are still "Z".
	d := BuildRequestCompleted(info, false)
	d.StartedAt = d.StartedAt.In(time.FixedZone("GMT", 0))
	t.Run("zero offset", func(t *testing.T) { checkDataJSON(t, d, true) })
}

func mustMarshal(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The one-pass encoder knows every field: a field added to RequestCompleted,
// Body or llmproxy.Usage must be added to appendJSON (and here).
func TestRequestCompletedJSONKnowsEveryField(t *testing.T) {
	for typ, want := range map[reflect.Type]string{
		reflect.TypeFor[RequestCompleted](): "RequestID:request_id ClientRequestID:client_request_id,omitempty Method:method Path:path Status:status ErrorCode:error_code,omitempty ProjectID:project_id,omitempty TokenID:token_id,omitempty Model:model,omitempty Stream:stream CacheStatus:cache_status,omitempty StartedAt:started_at LatencyMS:latency_ms TTFBMS:ttfb_ms UpstreamLatencyMS:upstream_latency_ms,omitempty Usage:usage Request:request,omitempty Response:response,omitempty",
		reflect.TypeFor[Body]():             "ContentType:content_type,omitempty Size:size Truncated:truncated,omitempty Merged:merged,omitempty JSON:json,omitempty Base64:base64,omitempty",
		reflect.TypeFor[llmproxy.Usage]():   "PromptTokens:prompt_tokens CompletionTokens:completion_tokens TotalTokens:total_tokens CachedTokens:cached_tokens,omitempty ReasoningTokens:reasoning_tokens,omitempty Source:source",
	} {
		var got []string
		for f := range typ.Fields() {
			got = append(got, f.Name+":"+f.Tag.Get("json"))
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			switch ft {
			case reflect.TypeFor[time.Time](), reflect.TypeFor[json.RawMessage]():
				continue // encoded as their MarshalJSON does
			}
			for _, iface := range []reflect.Type{reflect.TypeFor[json.Marshaler](), reflect.TypeFor[interface{ MarshalText() ([]byte, error) }]()} {
				if ft.Implements(iface) || reflect.PointerTo(ft).Implements(iface) {
					t.Errorf("%s.%s now has its own %s: teach appendJSON", typ.Name(), f.Name, iface)
				}
			}
		}
		if g := strings.Join(got, " "); g != want {
			t.Errorf("%s fields changed, update appendJSON:\n got %s\nwant %s", typ.Name(), g, want)
		}
	}
}

func FuzzRequestCompletedJSON(f *testing.F) {
	f.Add("r1", "<&>\u2028", "gpt-4o", 12.5, int64(7), []byte(`{"a":[1, 2]}`), []byte("\x00\xff"), int64(1700000000123456789))
	f.Add("\xff", "\b\f", "", -1e-7, int64(-1), []byte(`[`), []byte{}, int64(0))
	f.Fuzz(func(t *testing.T, id, s, model string, ms float64, tokens int64, body, b64 []byte, nanos int64) {
		d := &RequestCompleted{
			RequestID: id, ClientRequestID: s, Method: s, Path: s, Status: int(tokens), ErrorCode: s, ProjectID: id,
			TokenID: s, Model: model, Stream: tokens%2 == 0, CacheStatus: s, StartedAt: time.Unix(0, nanos).UTC(),
			LatencyMS: ms, TTFBMS: ms / 3, UpstreamLatencyMS: -ms,
			Usage:   llmproxy.Usage{PromptTokens: tokens, CompletionTokens: -tokens, TotalTokens: 1, CachedTokens: tokens, ReasoningTokens: tokens / 2, Source: llmproxy.UsageSource(s)},
			Request: &Body{ContentType: s, Size: len(body), Truncated: ms > 0, Merged: tokens > 0, JSON: body, Base64: b64},
		}
		want, wantErr := json.Marshal(d)
		if got, ok := d.appendJSON(nil); ok && (wantErr != nil || !bytes.Equal(got, want)) {
			t.Fatalf("appendJSON differs from json.Marshal (error %v):\n got %s\nwant %s", wantErr, got, want)
		}
	})
}
