package events

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func sseBody(events ...string) []byte {
	var b strings.Builder
	for _, e := range events {
		b.WriteString("data: " + e + "\n\n")
	}
	b.WriteString("data: [DONE]\n\n")
	return []byte(b.String())
}

func TestMergeChatChunksWithToolCalls(t *testing.T) {
	body := sseBody(
		`{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","system_fingerprint":"fp","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null},{"index":1,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"get_weather","arguments":""}}]},"finish_reason":null}]}`,
		`{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null},{"index":1,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]},"finish_reason":null}]}`,
		`{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"},{"index":1,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}},{"index":1,"id":"call_b","type":"function","function":{"name":"get_time","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}`,
		`{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":7,"total_tokens":16}}`,
	)
	out, ok := MergeStream(body)
	if !ok {
		t.Fatal("not merged")
	}
	var got struct {
		ID, Object, Model string
		SystemFingerprint string `json:"system_fingerprint"`
		Choices           []struct {
			Index   int
			Message struct {
				Role      string
				Content   *string
				ToolCalls []struct {
					ID, Type string
					Function struct{ Name, Arguments string }
				} `json:"tool_calls"`
			}
			FinishReason string `json:"finish_reason"`
		}
		Usage struct {
			TotalTokens int `json:"total_tokens"`
		}
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if got.Object != "chat.completion" || got.ID != "c1" || got.Model != "gpt-4o" || got.SystemFingerprint != "fp" || got.Usage.TotalTokens != 16 {
		t.Fatalf("envelope: %s", out)
	}
	if len(got.Choices) != 2 {
		t.Fatalf("choices: %s", out)
	}
	c0, c1 := got.Choices[0], got.Choices[1]
	if c0.Message.Content == nil || *c0.Message.Content != "Hello" || c0.FinishReason != "stop" || c0.Message.Role != "assistant" {
		t.Fatalf("choice 0: %s", out)
	}
	if c1.Message.Content != nil || c1.FinishReason != "tool_calls" || len(c1.Message.ToolCalls) != 2 {
		t.Fatalf("choice 1: %s", out)
	}
	tc := c1.Message.ToolCalls
	if tc[0].ID != "call_a" || tc[0].Function.Name != "get_weather" || tc[0].Function.Arguments != `{"city":"Paris"}` || tc[1].ID != "call_b" || tc[1].Function.Name != "get_time" {
		t.Fatalf("tool calls: %+v", tc)
	}
	// The merged body is what BuildRequestCompleted embeds for a stream.
	b := responseBody(body, "text/event-stream; charset=utf-8", false)
	if !b.Merged || b.Base64 != nil || string(b.JSON) != string(out) {
		t.Fatalf("stream body: %+v", b)
	}
}

// TestMergeLineEnds: a stream merges into the same object whichever line
// ends upstream used (CRLF, LF or CR, the ones SSE allows, also mixed),
// with a data field split over two lines, a keep-alive, or truncated.
func TestMergeLineEnds(t *testing.T) {
	first := []string{`{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o",`, `"choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}]}`}
	second := `{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}]}`
	want, ok := MergeStream(sseBody(first[0]+first[1], second))
	if !ok || !strings.Contains(string(want), `"content":"Hello"`) {
		t.Fatalf("LF stream: %s", want)
	}
	for _, tc := range []struct{ name, eol, blank string }{
		{"lf", "\n", "\n"},
		{"crlf", "\r\n", "\r\n"},
		{"cr", "\r", "\r"},
		{"crlf then lf", "\r\n", "\n"},
		{"lf then cr", "\n", "\r"},
	} {
		ev := func(lines ...string) string { return strings.Join(lines, tc.eol) + tc.eol + tc.blank }
		body := ev("data: "+first[0]+first[1]) + ev("data: "+second) + ev("data: [DONE]")
		multi := ev(": keep-alive") + ev("data: "+first[0], "data: "+first[1]) + ev("data: "+second)
		truncated := ev("data: "+first[0]+first[1]) + "data: " + second
		for _, b := range []string{body, multi, truncated} {
			got, ok := MergeStream([]byte(b))
			if !ok || string(got) != string(want) {
				t.Errorf("%s: %q merged into %s (%v), want %s", tc.name, b, got, ok, want)
			}
		}
	}
}

func TestMergeResponsesStream(t *testing.T) {
	body := []byte("event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\",\"status\":\"in_progress\",\"output\":[]}}\n\n" +
		"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\n\n" +
		"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"completed\",\"output\":[{\"type\":\"message\",\"content\":[{\"type\":\"output_text\",\"text\":\"Hi\"}]}],\"usage\":{\"input_tokens\":3,\"output_tokens\":1,\"total_tokens\":4}}}\n\n")
	out, ok := MergeStream(body)
	if !ok {
		t.Fatal("not merged")
	}
	var got struct {
		ID, Object, Status string
		Usage              struct {
			TotalTokens int `json:"total_tokens"`
		}
	}
	if err := json.Unmarshal(out, &got); err != nil || got.ID != "resp_1" || got.Status != "completed" || got.Object != "response" || got.Usage.TotalTokens != 4 {
		t.Fatalf("%v %s", err, out)
	}
	// Aborted before completion: the last response object seen.
	cut := body[:strings.Index(string(body), "event: response.completed")]
	out, ok = MergeStream(cut)
	if !ok || !strings.Contains(string(out), `"in_progress"`) {
		t.Fatalf("aborted stream: %s", out)
	}
}

func TestMergeTextCompletion(t *testing.T) {
	body := sseBody(
		`{"id":"cmpl-1","object":"text_completion","created":1,"model":"gpt-3.5-turbo-instruct","choices":[{"text":"Hello","index":0,"logprobs":null,"finish_reason":null}]}`,
		`{"id":"cmpl-1","object":"text_completion","created":1,"model":"gpt-3.5-turbo-instruct","choices":[{"text":" world","index":0,"logprobs":null,"finish_reason":"length"}]}`,
	)
	out, ok := MergeStream(body)
	if !ok || !strings.Contains(string(out), `"text":"Hello world"`) || !strings.Contains(string(out), `"object":"text_completion"`) || !strings.Contains(string(out), `"finish_reason":"length"`) {
		t.Fatalf("%s", out)
	}
}

func TestMergeRejectsUnknown(t *testing.T) {
	for _, b := range []string{"", "hello", "data: [DONE]\n\n", "data: {\"foo\":1}\n\n"} {
		if _, ok := MergeStream([]byte(b)); ok {
			t.Errorf("%q merged", b)
		}
	}
	// An unmergeable SSE body is kept raw (base64).
	if b := responseBody([]byte("data: nope\n\n"), "text/event-stream", false); b.Base64 == nil || b.Merged {
		t.Fatalf("%+v", b)
	}
}

func FuzzMergeStream(f *testing.F) {
	f.Add([]byte("data: {\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}]}\n\n"))
	f.Add([]byte("data: {\"type\":\"response.completed\",\"response\":{}}\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, ok := MergeStream(b)
		if ok && !json.Valid(out) {
			t.Fatalf("invalid JSON %s", out)
		}
	})
}

func BenchmarkMergeStream(b *testing.B) {
	var chunks []string
	for i := range 100 {
		chunks = append(chunks, fmt.Sprintf(`{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"token%d "},"finish_reason":null}]}`, i))
	}
	chunks = append(chunks, `{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":100,"total_tokens":109}}`)
	body := sseBody(chunks...)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := MergeStream(body); !ok {
			b.Fatal("not merged")
		}
	}
}

func BenchmarkSSEPayloads(b *testing.B) {
	var chunks []string
	for i := range 100 {
		chunks = append(chunks, fmt.Sprintf(`{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"token%d "}}]}`, i))
	}
	body := sseBody(chunks...)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if n := len(ssePayloads(body)); n != 100 {
			b.Fatalf("%d payloads", n)
		}
	}
}
