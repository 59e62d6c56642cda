package usage

import (
	"bytes"
	"encoding/json"

	"github.com/llm-proxy/llm-proxy/shared/jsonscan"
)

// The OpenAI counting rule for chat messages (cookbook "How to count tokens
// with tiktoken"): every message costs 3 tokens plus its fields, a name 1
// more, and every reply is primed with 3 tokens.
const (
	tokensPerMessage = 3
	tokensPerName    = 1
	tokensReplyPrime = 3
)

// Fields are the top-level members of a request body that token counting
// reads, as raw JSON (nil when absent). A caller that has split the body
// into its members already (the proxy does, for its parameter rules) fills
// them with Set, so that the body is not decoded again; FieldsOf does it
// from the body.
type Fields struct {
	Model        json.RawMessage
	Messages     json.RawMessage // chat completions
	Prompt       json.RawMessage // completions
	Input        json.RawMessage // embeddings, moderations, responses
	Instructions json.RawMessage // responses
	Tools        json.RawMessage

	MaxTokens           json.RawMessage
	MaxCompletionTokens json.RawMessage
	MaxOutputTokens     json.RawMessage
	N                   json.RawMessage
}

// Set records the top-level member key; keys counting does not read are
// ignored. The value is kept, not copied.
func (f *Fields) Set(key string, raw json.RawMessage) {
	switch key {
	case "model":
		f.Model = raw
	case "messages":
		f.Messages = raw
	case "prompt":
		f.Prompt = raw
	case "input":
		f.Input = raw
	case "instructions":
		f.Instructions = raw
	case "tools":
		f.Tools = raw
	case "max_tokens":
		f.MaxTokens = raw
	case "max_completion_tokens":
		f.MaxCompletionTokens = raw
	case "max_output_tokens":
		f.MaxOutputTokens = raw
	case "n":
		f.N = raw
	}
}

// FieldsOf splits the members of a JSON object body with Set; ok is false
// when the body is not one.
func FieldsOf(body []byte) (f Fields, ok bool) {
	err := jsonscan.Members(body, func(k, v []byte) error {
		f.Set(string(k), v)
		return nil
	})
	if err != nil {
		return Fields{}, false
	}
	return f, true
}

// optionalString decodes a member that must be a string when present: ""
// when absent or null, ok false when it is something else.
func optionalString(raw json.RawMessage) (string, bool) {
	if !present(raw) {
		return "", true
	}
	return jsonscan.String(raw)
}

// present reports whether a member is there and not null (json.Unmarshal
// leaves a Go value unchanged for null).
func present(raw json.RawMessage) bool {
	return len(raw) > 0 && string(raw) != "null"
}

// PromptTokens estimates the prompt tokens of a request body: chat messages
// by the OpenAI rule, completions prompts, embeddings/moderations input and
// Responses API input and instructions. Tool definitions are counted as
// their JSON text. An unparsable body counts 0.
func (c *Counter) PromptTokens(model string, body []byte) int64 {
	f, ok := FieldsOf(body)
	if !ok {
		return 0
	}
	return c.PromptTokensOf(model, f)
}

// PromptTokensOf is PromptTokens of a body already split into Fields. A
// member of the wrong type (e.g. messages that are not an array) counts 0,
// as an unparsable body does.
func (c *Counter) PromptTokensOf(model string, f Fields) int64 {
	instructions, ok := optionalString(f.Instructions)
	if !ok {
		return 0
	}
	reqModel, ok := optionalString(f.Model)
	if !ok {
		return 0
	}
	if model == "" {
		model = reqModel
	}
	var n int64
	if present(f.Messages) {
		count := 0
		err := jsonscan.Elements(f.Messages, func(m []byte) error {
			n += c.message(model, m)
			count++
			return nil
		})
		if err != nil {
			return 0
		}
		if count > 0 {
			n += tokensReplyPrime
		}
	}
	n += c.textOf(model, f.Prompt)
	n += c.textOf(model, f.Input)
	n += c.Count(model, instructions)
	if present(f.Tools) {
		n += c.Count(model, string(f.Tools))
	}
	return n
}

// message counts one chat message: 3 + every string field (content parts'
// text, tool calls as JSON) + 1 for a name.
func (c *Counter) message(model string, raw []byte) int64 {
	n := int64(tokensPerMessage)
	err := jsonscan.Members(raw, func(k, v []byte) error {
		switch string(k) {
		case "content":
			n += c.textOf(model, v)
		case "tool_calls", "function_call":
			n += c.Count(model, string(v))
		default:
			if s, ok := jsonscan.String(v); ok {
				n += c.Count(model, s)
			}
		}
		if string(k) == "name" {
			n += tokensPerName
		}
		return nil
	})
	if err != nil {
		return tokensPerMessage
	}
	return n
}

// textOf counts a value that is a string, an array of strings, an array of
// token ids, or an array of content parts / input items with text.
func (c *Counter) textOf(model string, v []byte) int64 {
	v = bytes.TrimSpace(v)
	if len(v) == 0 || string(v) == "null" {
		return 0
	}
	switch v[0] {
	case '"':
		if s, ok := jsonscan.String(v); ok {
			return c.Count(model, s)
		}
	case '[':
		var n int64
		err := jsonscan.Elements(v, func(it []byte) error {
			if len(it) > 0 && (it[0] >= '0' && it[0] <= '9') { // a token id
				n++
				return nil
			}
			n += c.textOf(model, it)
			return nil
		})
		if err != nil {
			return 0
		}
		return n
	case '{':
		var n int64
		err := jsonscan.Members(v, func(k, val []byte) error {
			switch string(k) {
			case "text":
				if s, ok := jsonscan.String(val); ok {
					n += c.Count(model, s)
				}
			case "content":
				n += c.textOf(model, val)
			case "role": // a Responses API message item
				if s, ok := jsonscan.String(val); ok && s != "" {
					n += tokensPerMessage
				}
			}
			return nil
		})
		if err != nil {
			return 0
		}
		return n
	}
	return 0
}

// MaxOutputTokens returns the request's output bound (max_tokens,
// max_completion_tokens or max_output_tokens), or 0 when it sets none.
func MaxOutputTokens(body []byte) int64 {
	f, ok := FieldsOf(body)
	if !ok {
		return 0
	}
	return f.MaxOutput()
}

// MaxOutput is MaxOutputTokens of a body already split into Fields. A
// bound that is not an integer makes it 0.
func (f Fields) MaxOutput() int64 {
	var v [4]*int64
	for i, raw := range [4]json.RawMessage{f.MaxCompletionTokens, f.MaxTokens, f.MaxOutputTokens, f.N} {
		if present(raw) && json.Unmarshal(raw, &v[i]) != nil {
			return 0
		}
	}
	var m int64
	for _, p := range v[:3] {
		if p != nil && *p > 0 {
			m = *p
			break
		}
	}
	if n := v[3]; n != nil && *n > 1 {
		m *= *n
	}
	return m
}
