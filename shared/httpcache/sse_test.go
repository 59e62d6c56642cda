package httpcache

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/llm-proxy/llm-proxy/shared/sse"
)

// TestStreamLineEnds: a captured stream is split, checked and stripped of
// keep-alives alike whichever line ends upstream used (CRLF, LF or CR, the
// ones SSE allows, also mixed).
func TestStreamLineEnds(t *testing.T) {
	for _, tc := range []struct {
		name string
		eol  [2]string // the line end inside events, and the blank line's
	}{
		{"lf", [2]string{"\n", "\n"}},
		{"crlf", [2]string{"\r\n", "\r\n"}},
		{"cr", [2]string{"\r", "\r"}},
		{"crlf then lf", [2]string{"\r\n", "\n"}},
		{"lf then cr", [2]string{"\n", "\r"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := func(lines ...string) string {
				return strings.Join(lines, tc.eol[0]) + tc.eol[0] + tc.eol[1]
			}
			events := []string{ev("data: a"), ev(": keep-alive"), ev("event: x", "data: b"), ev("data: [DONE]")}
			body := strings.Join(events, "")
			var got []string
			for e := range sse.Events([]byte(body)) {
				got = append(got, string(e))
			}
			if !slices.Equal(got, events) {
				t.Fatalf("events %q, want %q", got, events)
			}
			want := events[0] + events[2] + events[3]
			if got := string(stripComments([]byte(body))); got != want {
				t.Fatalf("stripComments %q, want %q", got, want)
			}
			if !streamFinished("/v1/chat/completions", []byte(body)) {
				t.Fatal("a stream that ends with [DONE] is not finished")
			}
			if !streamFinished("/v1/chat/completions", []byte(body+ev(": keep-alive"))) {
				t.Fatal("a stream that ends with [DONE] and a keep-alive is not finished")
			}
			if streamFinished("/v1/chat/completions", []byte(events[0]+events[2])) {
				t.Fatal("a stream without [DONE] is finished")
			}
			if streamFinished("/v1/chat/completions", []byte(body[:len(body)-len(tc.eol[1])])) {
				t.Fatal("a stream cut before its last blank line is finished")
			}
			responses := ev("event: response.created", "data: {}") + ev("event: response.completed", `data: {"type":"response.completed"}`)
			if !streamFinished("/v1/responses", []byte(responses)) {
				t.Fatal("a Responses stream that ends with response.completed is not finished")
			}
			if streamFinished("/v1/other", []byte(ev("data: a")+ev(`data: {"error":{"code":"stream_interrupted"}}`))) {
				t.Fatal("a stream the proxy ended with an error event is finished")
			}
		})
	}
}

// benchStream is a captured chat stream: 100 content chunks, the usage
// chunk, [DONE].
func benchStream(eol string) []byte {
	var b strings.Builder
	for i := range 100 {
		fmt.Fprintf(&b, `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"token%d "},"finish_reason":null}]}`+eol+eol, i)
	}
	b.WriteString(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":100,"total_tokens":110}}` + eol + eol)
	b.WriteString("data: [DONE]" + eol + eol)
	return []byte(b.String())
}

// BenchmarkStreamStore is what finish does with a captured stream before
// storing it, and a hit does to replay it: check that it finished, drop
// comment events, split it into events.
func BenchmarkStreamStore(b *testing.B) {
	body := benchStream("\n")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if !streamFinished("/v1/chat/completions", body) {
			b.Fatal("not finished")
		}
		stored := stripComments(body)
		n := 0
		for range sse.Events(stored) {
			n++
		}
		if n != 102 {
			b.Fatalf("%d events", n)
		}
	}
}
