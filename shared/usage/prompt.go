package usage

import (
	"encoding/json"
	"strings"
)

// The OpenAI counting rule for chat messages (cookbook "How to count tokens
// with tiktoken"): every message costs 3 tokens plus its fields, a name 1
// more, and every reply is primed with 3 tokens.
const (
	tokensPerMessage = 3
	tokensPerName    = 1
	tokensReplyPrime = 3
)

// request is the part of any OpenAI request body that carries prompt text.
type request struct {
	Model        string            `json:"model"`
	Messages     []json.RawMessage `json:"messages"`     // chat completions
	Prompt       json.RawMessage   `json:"prompt"`       // completions
	Input        json.RawMessage   `json:"input"`        // embeddings, moderations, responses
	Instructions string            `json:"instructions"` // responses
	Tools        json.RawMessage   `json:"tools"`
}

// PromptTokens estimates the prompt tokens of a request body: chat messages
// by the OpenAI rule, completions prompts, embeddings/moderations input and
// Responses API input and instructions. Tool definitions are counted as
// their JSON text. An unparsable body counts 0.
func (c *Counter) PromptTokens(model string, body []byte) int64 {
	var r request
	if json.Unmarshal(body, &r) != nil {
		return 0
	}
	if model == "" {
		model = r.Model
	}
	var n int64
	if len(r.Messages) > 0 {
		for _, m := range r.Messages {
			n += c.message(model, m)
		}
		n += tokensReplyPrime
	}
	n += c.textOf(model, r.Prompt)
	n += c.textOf(model, r.Input)
	n += c.Count(model, r.Instructions)
	if len(r.Tools) > 0 && string(r.Tools) != "null" {
		n += c.Count(model, string(r.Tools))
	}
	return n
}

// message counts one chat message: 3 + every string field (content parts'
// text, tool calls as JSON) + 1 for a name.
func (c *Counter) message(model string, raw json.RawMessage) int64 {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return tokensPerMessage
	}
	n := int64(tokensPerMessage)
	for k, v := range m {
		switch k {
		case "content":
			n += c.textOf(model, v)
		case "tool_calls", "function_call":
			n += c.Count(model, string(v))
		default:
			var s string
			if json.Unmarshal(v, &s) == nil {
				n += c.Count(model, s)
			}
		}
		if k == "name" {
			n += tokensPerName
		}
	}
	return n
}

// textOf counts a value that is a string, an array of strings, an array of
// token ids, or an array of content parts / input items with text.
func (c *Counter) textOf(model string, v json.RawMessage) int64 {
	v = json.RawMessage(strings.TrimSpace(string(v)))
	if len(v) == 0 || string(v) == "null" {
		return 0
	}
	switch v[0] {
	case '"':
		var s string
		if json.Unmarshal(v, &s) == nil {
			return c.Count(model, s)
		}
	case '[':
		var items []json.RawMessage
		if json.Unmarshal(v, &items) != nil {
			return 0
		}
		var n int64
		for _, it := range items {
			if len(it) > 0 && (it[0] >= '0' && it[0] <= '9') { // a token id
				n++
				continue
			}
			n += c.textOf(model, it)
		}
		return n
	case '{':
		var part struct {
			Text    *string         `json:"text"`
			Content json.RawMessage `json:"content"`
			Role    string          `json:"role"`
			Type    string          `json:"type"`
		}
		if json.Unmarshal(v, &part) != nil {
			return 0
		}
		var n int64
		if part.Text != nil {
			n += c.Count(model, *part.Text)
		}
		if len(part.Content) > 0 {
			n += c.textOf(model, part.Content)
		}
		if part.Role != "" { // a Responses API message item
			n += tokensPerMessage
		}
		return n
	}
	return 0
}

// MaxOutputTokens returns the request's output bound (max_tokens,
// max_completion_tokens or max_output_tokens), or 0 when it sets none.
func MaxOutputTokens(body []byte) int64 {
	var r struct {
		MaxTokens           *int64 `json:"max_tokens"`
		MaxCompletionTokens *int64 `json:"max_completion_tokens"`
		MaxOutputTokens     *int64 `json:"max_output_tokens"`
		N                   *int64 `json:"n"`
	}
	if json.Unmarshal(body, &r) != nil {
		return 0
	}
	var m int64
	for _, p := range []*int64{r.MaxCompletionTokens, r.MaxTokens, r.MaxOutputTokens} {
		if p != nil && *p > 0 {
			m = *p
			break
		}
	}
	if r.N != nil && *r.N > 1 {
		m *= *r.N
	}
	return m
}
