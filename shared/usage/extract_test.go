package usage

import (
	"testing"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

func TestFromJSONEdgeCases(t *testing.T) {
	cases := []struct {
		name   string
		body   string
		ok     bool
		prompt int64
		text   string
	}{
		{"usage first", `{"usage":{"prompt_tokens":4,"completion_tokens":2},"choices":[{"message":{"content":"x"}}]}`, true, 4, ""},
		{"usage null falls back to text", `{"choices":[{"message":{"content":"Hi"}}],"usage":null}`, false, 0, "Hi"},
		{"usage not an object", `{"usage":"lots","choices":[]}`, false, 0, ""},
		{"invalid JSON", `{"usage":{"prompt_tokens":4}`, false, 0, ""},
		{"not an object", `[{"usage":{"prompt_tokens":4}}]`, false, 0, ""},
		{"nested usage is not the answer's", `{"choices":[{"message":{"content":"{\"usage\":1}","usage":{"prompt_tokens":9}}}]}`, false, 0, `{"usage":1}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u, text, ok := FromJSON([]byte(c.body))
			if ok != c.ok || u.PromptTokens != c.prompt || text != c.text {
				t.Fatalf("FromJSON = %+v, %q, %v; want prompt %d, %q, %v", u, text, ok, c.prompt, c.text, c.ok)
			}
			if ok && u.Source != llmproxy.UsageReported {
				t.Fatalf("source %q, want reported", u.Source)
			}
		})
	}
}

func TestStreamObserveChunks(t *testing.T) {
	cases := []struct {
		name      string
		data      string
		usageOnly bool
		prompt    int64 // reported prompt tokens after the event (-1: none)
		text      string
		done      bool
	}{
		{"chat delta", `{"choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"}}]}`, false, -1, "Hel", false},
		{"refusal and reasoning", `{"choices":[{"delta":{"refusal":"no","reasoning_content":"hm"}}]}`, false, -1, "nohm", false},
		{"tool call", `{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"name":"f","arguments":"{\"a\":1}"}}]}}]}`, false, -1, `f{"a":1}`, false},
		{"completions text", `{"choices":[{"text":"abc","index":0}]}`, false, -1, "abc", false},
		{"include_usage chunk", `{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"completion_tokens_details":{"reasoning_tokens":1}}}`, true, 5, "", false},
		{"usage with choices is not usage-only", `{"choices":[{"delta":{"content":"x"}}],"usage":{"prompt_tokens":5}}`, false, 5, "x", false},
		{"choices not an array", `{"choices":{},"usage":{"prompt_tokens":5}}`, false, 5, "", false},
		{"usage null", `{"choices":[],"usage":null}`, false, -1, "", false},
		{"responses text delta", `{"type":"response.output_text.delta","delta":"Hi \u00e9"}`, false, -1, "Hi é", false},
		{"responses completed", `{"type":"response.completed","response":{"usage":{"input_tokens":7,"output_tokens":3,"input_tokens_details":{"cached_tokens":2}}}}`, false, 7, "", true},
		{"invalid JSON is ignored", `{"choices":[{"delta":{"content":"lost"}}]`, false, -1, "", false},
		{"done marker", `[DONE]`, false, -1, "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := NewStream(0)
			if got := s.Observe([]byte(c.data)); got != c.usageOnly {
				t.Fatalf("usageOnly = %v, want %v", got, c.usageOnly)
			}
			u, ok := s.Reported()
			switch {
			case c.prompt < 0 && ok:
				t.Fatalf("reported %+v, want none", u)
			case c.prompt >= 0 && (!ok || u.PromptTokens != c.prompt):
				t.Fatalf("reported %+v (%v), want prompt %d", u, ok, c.prompt)
			}
			if text, _ := s.Text(); text != c.text {
				t.Fatalf("text %q, want %q", text, c.text)
			}
			if s.Done() != c.done {
				t.Fatalf("done %v, want %v", s.Done(), c.done)
			}
		})
	}
	s := NewStream(0)
	s.Observe([]byte(`{"type":"response.completed","response":{"usage":{"input_tokens":7,"output_tokens":3,"input_tokens_details":{"cached_tokens":2},"output_tokens_details":{"reasoning_tokens":1}}}}`))
	if u, _ := s.Reported(); u.CachedTokens != 2 || u.ReasoningTokens != 1 || u.TotalTokens != 10 || u.CompletionTokens != 3 {
		t.Fatalf("details lost: %+v", u)
	}
}

func BenchmarkStreamObserve(b *testing.B) {
	ev := []byte(`{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{"content":" word"},"logprobs":null,"finish_reason":null}]}`)
	b.ReportAllocs()
	for b.Loop() {
		s := NewStream(0)
		s.Observe(ev)
	}
}
