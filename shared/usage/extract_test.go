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
