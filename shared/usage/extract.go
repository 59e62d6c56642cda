package usage

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/llm-proxy/llm-proxy/shared/jsonscan"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

// wireUsage covers the usage objects of chat completions, completions and
// embeddings (prompt/completion) and of the Responses API (input/output).
type wireUsage struct {
	PromptTokens        int64 `json:"prompt_tokens"`
	CompletionTokens    int64 `json:"completion_tokens"`
	TotalTokens         int64 `json:"total_tokens"`
	InputTokens         int64 `json:"input_tokens"`
	OutputTokens        int64 `json:"output_tokens"`
	PromptTokensDetails *struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	InputTokensDetails *struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	CompletionTokensDetails *struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
	OutputTokensDetails *struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
}

func (w *wireUsage) usage() llmproxy.Usage {
	u := llmproxy.Usage{
		PromptTokens:     w.PromptTokens + w.InputTokens,
		CompletionTokens: w.CompletionTokens + w.OutputTokens,
		TotalTokens:      w.TotalTokens,
		Source:           llmproxy.UsageReported,
	}
	if u.TotalTokens == 0 {
		u.TotalTokens = u.PromptTokens + u.CompletionTokens
	}
	if d := w.PromptTokensDetails; d != nil {
		u.CachedTokens = d.CachedTokens
	}
	if d := w.InputTokensDetails; d != nil {
		u.CachedTokens = d.CachedTokens
	}
	if d := w.CompletionTokensDetails; d != nil {
		u.ReasoningTokens = d.ReasoningTokens
	}
	if d := w.OutputTokensDetails; d != nil {
		u.ReasoningTokens = d.ReasoningTokens
	}
	return u
}

// response is the part of a JSON response body that carries the
// completion text, across chat completions, completions and the Responses
// API.
type response struct {
	Choices []struct {
		Text    string `json:"text"`
		Message struct {
			Content   *string         `json:"content"`
			Refusal   *string         `json:"refusal"`
			ToolCalls json.RawMessage `json:"tool_calls"`
		} `json:"message"`
	} `json:"choices"`
	Output []struct {
		Type      string `json:"type"`
		Arguments string `json:"arguments"`
		Content   []struct {
			Text string `json:"text"`
		} `json:"content"`
	} `json:"output"`
}

// FromJSON reads the usage of a JSON response body. ok is false when the
// body has no usage object; text is then the completion text (all choices,
// tool-call arguments, Responses API output) for an estimate.
func FromJSON(body []byte) (u llmproxy.Usage, text string, ok bool) {
	// Most answers carry usage: read that member alone, without decoding
	// the choices.
	var usageRaw []byte
	err := jsonscan.Members(body, func(k, v []byte) error {
		if string(k) == "usage" {
			usageRaw = v
		}
		return nil
	})
	if err != nil {
		return llmproxy.Usage{}, "", false
	}
	if usageRaw != nil && string(usageRaw) != "null" {
		var w wireUsage
		if json.Unmarshal(usageRaw, &w) == nil {
			return w.usage(), "", true
		}
		return llmproxy.Usage{}, "", false
	}
	var r response
	if json.Unmarshal(body, &r) != nil {
		return llmproxy.Usage{}, "", false
	}
	var b strings.Builder
	for _, c := range r.Choices {
		b.WriteString(c.Text)
		if c.Message.Content != nil {
			b.WriteString(*c.Message.Content)
		}
		if c.Message.Refusal != nil {
			b.WriteString(*c.Message.Refusal)
		}
		if len(c.Message.ToolCalls) > 0 && string(c.Message.ToolCalls) != "null" {
			b.Write(c.Message.ToolCalls)
		}
	}
	for _, o := range r.Output {
		for _, c := range o.Content {
			b.WriteString(c.Text)
		}
		b.WriteString(o.Arguments)
	}
	return llmproxy.Usage{}, b.String(), false
}

// chunk is one streamed event's JSON: a chat/completions chunk or a
// Responses API event.
type chunk struct {
	Type    string `json:"type"`
	Choices []struct {
		Text  string `json:"text"`
		Delta struct {
			Content          string `json:"content"`
			Refusal          string `json:"refusal"`
			ReasoningContent string `json:"reasoning_content"`
			ToolCalls        []struct {
				Function struct {
					Name      string `json:"name"`
					Arguments string `json:"arguments"`
				} `json:"function"`
			} `json:"tool_calls"`
		} `json:"delta"`
	} `json:"choices"`
	Usage    *wireUsage      `json:"usage"`
	Delta    json.RawMessage `json:"delta"`
	Response *struct {
		Usage *wireUsage `json:"usage"`
	} `json:"response"`
}

// Stream accumulates what a streamed response tells about usage: the
// reported usage (chat's final usage chunk, the Responses API's
// response.completed) and the completion text seen so far, for an estimate
// when the stream ends without usage. Text is bounded by maxText.
type Stream struct {
	reported *llmproxy.Usage
	text     []byte
	maxText  int
	overflow int64 // bytes of text beyond maxText
	done     bool
}

// NewStream returns a Stream that keeps at most maxText bytes of completion
// text (0 means 1 MiB); the rest is only counted in bytes.
func NewStream(maxText int) *Stream {
	if maxText <= 0 {
		maxText = 1 << 20
	}
	return &Stream{maxText: maxText}
}

// Observe reads one event's data. It reports whether the event is a
// usage-only chat chunk (empty choices, usage set): the chunk that
// stream_options.include_usage adds.
func (s *Stream) Observe(data []byte) (usageOnly bool) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		if bytes.Equal(data, []byte("[DONE]")) {
			s.done = true
		}
		return false
	}
	var c chunk
	_ = json.Unmarshal(data, &c) // partial decoding is fine: fields that parsed are used
	if c.Usage != nil {
		u := c.Usage.usage()
		s.reported = &u
		if c.Choices != nil && len(c.Choices) == 0 && c.Type == "" {
			usageOnly = true
		}
	}
	if c.Response != nil && c.Response.Usage != nil {
		u := c.Response.Usage.usage()
		s.reported = &u
	}
	for _, ch := range c.Choices {
		s.addText(ch.Text)
		s.addText(ch.Delta.Content)
		s.addText(ch.Delta.Refusal)
		s.addText(ch.Delta.ReasoningContent)
		for _, tc := range ch.Delta.ToolCalls {
			s.addText(tc.Function.Name)
			s.addText(tc.Function.Arguments)
		}
	}
	if strings.HasSuffix(c.Type, ".delta") && len(c.Delta) > 0 && c.Delta[0] == '"' {
		var d string
		if json.Unmarshal(c.Delta, &d) == nil {
			s.addText(d)
		}
	}
	if c.Type == "response.completed" || c.Type == "response.incomplete" || c.Type == "response.failed" {
		s.done = true
	}
	return usageOnly
}

func (s *Stream) addText(t string) {
	if t == "" {
		return
	}
	room := s.maxText - len(s.text)
	if room >= len(t) {
		s.text = append(s.text, t...)
		return
	}
	if room > 0 {
		s.text = append(s.text, t[:room]...)
	}
	s.overflow += int64(len(t) - max(room, 0))
}

// Reported returns the usage the upstream reported, if any.
func (s *Stream) Reported() (llmproxy.Usage, bool) {
	if s.reported == nil {
		return llmproxy.Usage{}, false
	}
	return *s.reported, true
}

// Done reports whether the stream's terminal event ([DONE] or a final
// Responses API event) was seen.
func (s *Stream) Done() bool { return s.done }

// Text returns the completion text seen (bounded) and how many more bytes
// were seen beyond the bound.
func (s *Stream) Text() (string, int64) { return string(s.text), s.overflow }

// Estimate builds an estimated usage from a prompt count and completion
// text (plus extraBytes of text not kept, counted at 4 bytes a token).
func (c *Counter) Estimate(model string, promptTokens int64, completion string, extraBytes int64) llmproxy.Usage {
	ct := c.Count(model, completion) + (extraBytes+3)/4
	return llmproxy.Usage{
		PromptTokens:     promptTokens,
		CompletionTokens: ct,
		TotalTokens:      promptTokens + ct,
		Source:           llmproxy.UsageEstimated,
	}
}
