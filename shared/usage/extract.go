package usage

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/llm-proxy/llm-proxy/shared/jsonscan"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

// usageOf reads a usage object: chat completions, completions and
// embeddings (prompt/completion) or the Responses API (input/output). ok is
// false when raw is not an object.
func usageOf(raw []byte) (u llmproxy.Usage, ok bool) {
	var prompt, completion, input, output, total int64
	var promptCached, inputCached, completionReasoning, outputReasoning int64 = -1, -1, -1, -1
	err := jsonscan.Members(raw, func(k, v []byte) error {
		switch string(k) {
		case "prompt_tokens":
			prompt, _ = jsonscan.Int(v)
		case "completion_tokens":
			completion, _ = jsonscan.Int(v)
		case "total_tokens":
			total, _ = jsonscan.Int(v)
		case "input_tokens":
			input, _ = jsonscan.Int(v)
		case "output_tokens":
			output, _ = jsonscan.Int(v)
		case "prompt_tokens_details":
			promptCached = detail(v, "cached_tokens")
		case "input_tokens_details":
			inputCached = detail(v, "cached_tokens")
		case "completion_tokens_details":
			completionReasoning = detail(v, "reasoning_tokens")
		case "output_tokens_details":
			outputReasoning = detail(v, "reasoning_tokens")
		}
		return nil
	})
	if err != nil {
		return llmproxy.Usage{}, false
	}
	u = llmproxy.Usage{
		PromptTokens:     prompt + input,
		CompletionTokens: completion + output,
		TotalTokens:      total,
		Source:           llmproxy.UsageReported,
	}
	if u.TotalTokens == 0 {
		u.TotalTokens = u.PromptTokens + u.CompletionTokens
	}
	for _, c := range [...]int64{promptCached, inputCached} { // the later one wins
		if c >= 0 {
			u.CachedTokens = c
		}
	}
	for _, r := range [...]int64{completionReasoning, outputReasoning} {
		if r >= 0 {
			u.ReasoningTokens = r
		}
	}
	return u, true
}

// detail reads one integer member of a *_details object: -1 when the object
// is absent or null, 0 when it lacks the member.
func detail(raw []byte, name string) int64 {
	if string(raw) == "null" {
		return -1
	}
	var n int64
	_ = jsonscan.Members(raw, func(k, v []byte) error {
		if string(k) == name {
			n, _ = jsonscan.Int(v)
		}
		return nil
	})
	return n
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
		u, ok := usageOf(usageRaw)
		return u, "", ok
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
	ev, ok := readChunk(data)
	if !ok {
		return false // not JSON: nothing to learn from it
	}
	if ev.usage != nil {
		s.reported = ev.usage
		if ev.emptyChoices && ev.typ == "" {
			usageOnly = true
		}
	}
	if ev.responseUsage != nil {
		s.reported = ev.responseUsage
	}
	for _, t := range ev.texts {
		s.addText(t)
	}
	if ev.typ == "response.completed" || ev.typ == "response.incomplete" || ev.typ == "response.failed" {
		s.done = true
	}
	return usageOnly
}

// chunk is what one streamed event's JSON tells: a chat/completions chunk
// or a Responses API event.
type chunk struct {
	typ           string
	emptyChoices  bool            // "choices": [] (the include_usage chunk)
	usage         *llmproxy.Usage // chat/completions usage
	responseUsage *llmproxy.Usage // Responses API response.usage
	texts         []string        // completion text: deltas, refusals, reasoning, tool calls
}

// readChunk reads an event's data with jsonscan (no decoding into a tree:
// a stream has one event per token or so). ok is false when data is not a
// valid JSON object.
func readChunk(data []byte) (c chunk, ok bool) {
	var delta []byte
	err := jsonscan.Members(data, func(k, v []byte) error {
		switch string(k) {
		case "type":
			c.typ, _ = jsonscan.String(v)
		case "choices":
			n := 0
			err := jsonscan.Elements(v, func(choice []byte) error {
				n++
				c.texts = appendChoiceText(c.texts, choice)
				return nil
			})
			c.emptyChoices = err == nil && n == 0
		case "usage":
			if string(v) != "null" {
				if u, ok := usageOf(v); ok {
					c.usage = &u
				}
			}
		case "delta":
			delta = v
		case "response":
			_ = jsonscan.Members(v, func(k, v []byte) error {
				if string(k) == "usage" && string(v) != "null" {
					if u, ok := usageOf(v); ok {
						c.responseUsage = &u
					}
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return chunk{}, false
	}
	// Responses API text deltas: response.output_text.delta and friends.
	if strings.HasSuffix(c.typ, ".delta") && len(delta) > 0 && delta[0] == '"' {
		if d, ok := jsonscan.String(delta); ok {
			c.texts = append(c.texts, d)
		}
	}
	return c, true
}

// appendChoiceText appends a streamed choice's text: completions' text and
// the delta's.
func appendChoiceText(texts []string, choice []byte) []string {
	_ = jsonscan.Members(choice, func(k, v []byte) error {
		switch string(k) {
		case "text":
			texts = appendString(texts, v)
		case "delta":
			texts = appendDeltaText(texts, v)
		}
		return nil
	})
	return texts
}

// appendDeltaText appends a chat delta's content, refusal, reasoning and
// tool-call names and arguments.
func appendDeltaText(texts []string, delta []byte) []string {
	_ = jsonscan.Members(delta, func(k, v []byte) error {
		switch string(k) {
		case "content", "refusal", "reasoning_content":
			texts = appendString(texts, v)
		case "tool_calls":
			_ = jsonscan.Elements(v, func(call []byte) error {
				texts = appendToolCallText(texts, call)
				return nil
			})
		}
		return nil
	})
	return texts
}

// appendToolCallText appends a streamed tool call's function name and
// arguments.
func appendToolCallText(texts []string, call []byte) []string {
	_ = jsonscan.Members(call, func(k, v []byte) error {
		if string(k) != "function" {
			return nil
		}
		return jsonscan.Members(v, func(k, v []byte) error {
			if string(k) == "name" || string(k) == "arguments" {
				texts = appendString(texts, v)
			}
			return nil
		})
	})
	return texts
}

func appendString(texts []string, raw []byte) []string {
	if s, ok := jsonscan.String(raw); ok && s != "" {
		return append(texts, s)
	}
	return texts
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
