package events

import (
	"bytes"
	"encoding/json"
	"sort"

	"github.com/llm-proxy/llm-proxy/shared/sse"
)

// MergeStream merges the raw SSE body of a streamed OpenAI answer into the
// object the same request would have returned without streaming:
//   - chat.completion.chunk events → one chat.completion (per choice: role,
//     content, refusal, tool_calls with their arguments joined, finish_reason),
//     with the usage chunk when there is one;
//   - text_completion chunks → one text_completion;
//   - Responses API events → the response object of response.completed (or of
//     the last response.* event carrying one: incomplete, failed, …).
//
// It returns false when b holds no stream it recognises. A truncated stream
// merges into what was captured.
func MergeStream(b []byte) (json.RawMessage, bool) {
	payloads := ssePayloads(b)
	if len(payloads) == 0 {
		return nil, false
	}
	var head struct {
		Object string `json:"object"`
		Type   string `json:"type"`
	}
	for _, p := range payloads {
		if json.Unmarshal(p, &head) == nil && (head.Object != "" || head.Type != "") {
			break
		}
	}
	switch {
	case head.Object == "chat.completion.chunk":
		return mergeChat(payloads)
	case head.Object == "text_completion":
		return mergeText(payloads)
	case head.Type != "":
		return mergeResponses(payloads)
	}
	return nil, false
}

// ssePayloads returns the data of each SSE event (an incomplete last one
// included: a truncated stream merges into what was captured), without
// [DONE]. Lines end at CRLF, LF or CR (sse.Lines).
func ssePayloads(b []byte) [][]byte {
	var out [][]byte
	var cur []byte
	has := false
	flush := func() {
		if has && !bytes.Equal(bytes.TrimSpace(cur), []byte("[DONE]")) && len(cur) > 0 {
			out = append(out, cur)
		}
		cur, has = nil, false
	}
	for line := range sse.Lines(b) {
		if len(line) == 0 {
			flush()
			continue
		}
		if name, v := sse.Field(line); string(name) == "data" {
			if has {
				cur = append(append(cur, '\n'), v...)
			} else {
				cur, has = append([]byte(nil), v...), true
			}
		}
	}
	flush()
	return out
}

type chatChunk struct {
	ID                string          `json:"id"`
	Object            string          `json:"object"`
	Created           int64           `json:"created"`
	Model             string          `json:"model"`
	SystemFingerprint string          `json:"system_fingerprint"`
	ServiceTier       string          `json:"service_tier"`
	Usage             json.RawMessage `json:"usage"`
	Choices           []struct {
		Index int `json:"index"`
		Delta struct {
			Role         string          `json:"role"`
			Content      *string         `json:"content"`
			Refusal      *string         `json:"refusal"`
			FunctionCall *functionCall   `json:"function_call"`
			ToolCalls    []toolCallDelta `json:"tool_calls"`
		} `json:"delta"`
		Text         *string `json:"text"` // text_completion chunks
		FinishReason *string `json:"finish_reason"`
		Logprobs     *struct {
			Content []json.RawMessage `json:"content"`
			Refusal []json.RawMessage `json:"refusal"`
		} `json:"logprobs"`
	} `json:"choices"`
}

type functionCall struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

type toolCallDelta struct {
	Index    int          `json:"index"`
	ID       string       `json:"id"`
	Type     string       `json:"type"`
	Function functionCall `json:"function"`
}

type toolCall struct {
	ID       string       `json:"id"`
	Type     string       `json:"type"`
	Function functionCall `json:"function"`
}

type chatMessage struct {
	Role         string        `json:"role"`
	Content      *string       `json:"content"`
	Refusal      *string       `json:"refusal"`
	ToolCalls    []toolCall    `json:"tool_calls,omitempty"`
	FunctionCall *functionCall `json:"function_call,omitempty"`
}

type chatLogprobs struct {
	Content []json.RawMessage `json:"content"`
	Refusal []json.RawMessage `json:"refusal"`
}

type chatChoice struct {
	Index        int           `json:"index"`
	Message      chatMessage   `json:"message"`
	Logprobs     *chatLogprobs `json:"logprobs"`
	FinishReason *string       `json:"finish_reason"`

	toolIdx map[int]int
	content []byte
	refusal []byte
	hasC    bool
	hasR    bool
}

type chatCompletion struct {
	ID                string          `json:"id"`
	Object            string          `json:"object"`
	Created           int64           `json:"created"`
	Model             string          `json:"model"`
	Choices           []*chatChoice   `json:"choices"`
	Usage             json.RawMessage `json:"usage,omitempty"`
	SystemFingerprint string          `json:"system_fingerprint,omitempty"`
	ServiceTier       string          `json:"service_tier,omitempty"`
}

func mergeChat(payloads [][]byte) (json.RawMessage, bool) {
	out := chatCompletion{Object: "chat.completion"}
	choices := map[int]*chatChoice{}
	for _, p := range payloads {
		var c chatChunk
		if json.Unmarshal(p, &c) != nil || c.Object != "chat.completion.chunk" {
			continue
		}
		if out.ID == "" {
			out.ID, out.Created, out.Model = c.ID, c.Created, c.Model
		}
		if c.SystemFingerprint != "" {
			out.SystemFingerprint = c.SystemFingerprint
		}
		if c.ServiceTier != "" {
			out.ServiceTier = c.ServiceTier
		}
		if len(c.Usage) > 0 && !bytes.Equal(c.Usage, []byte("null")) {
			out.Usage = c.Usage
		}
		for _, ch := range c.Choices {
			m := choices[ch.Index]
			if m == nil {
				m = &chatChoice{Index: ch.Index, Message: chatMessage{Role: "assistant"}, toolIdx: map[int]int{}}
				choices[ch.Index] = m
			}
			d := ch.Delta
			if d.Role != "" {
				m.Message.Role = d.Role
			}
			if d.Content != nil {
				m.content, m.hasC = append(m.content, *d.Content...), true
			}
			if d.Refusal != nil {
				m.refusal, m.hasR = append(m.refusal, *d.Refusal...), true
			}
			if d.FunctionCall != nil {
				if m.Message.FunctionCall == nil {
					m.Message.FunctionCall = &functionCall{}
				}
				m.Message.FunctionCall.Name += d.FunctionCall.Name
				m.Message.FunctionCall.Arguments += d.FunctionCall.Arguments
			}
			for _, tc := range d.ToolCalls {
				i, ok := m.toolIdx[tc.Index]
				if !ok {
					i = len(m.Message.ToolCalls)
					m.toolIdx[tc.Index] = i
					m.Message.ToolCalls = append(m.Message.ToolCalls, toolCall{Type: "function"})
				}
				t := &m.Message.ToolCalls[i]
				if tc.ID != "" {
					t.ID = tc.ID
				}
				if tc.Type != "" {
					t.Type = tc.Type
				}
				t.Function.Name += tc.Function.Name
				t.Function.Arguments += tc.Function.Arguments
			}
			if ch.FinishReason != nil {
				m.FinishReason = ch.FinishReason
			}
			if ch.Logprobs != nil {
				if m.Logprobs == nil {
					m.Logprobs = &chatLogprobs{}
				}
				m.Logprobs.Content = append(m.Logprobs.Content, ch.Logprobs.Content...)
				m.Logprobs.Refusal = append(m.Logprobs.Refusal, ch.Logprobs.Refusal...)
			}
		}
	}
	if out.ID == "" && len(choices) == 0 {
		return nil, false
	}
	for _, m := range choices {
		if m.hasC {
			s := string(m.content)
			m.Message.Content = &s
		}
		if m.hasR {
			s := string(m.refusal)
			m.Message.Refusal = &s
		}
		out.Choices = append(out.Choices, m)
	}
	sort.Slice(out.Choices, func(i, j int) bool { return out.Choices[i].Index < out.Choices[j].Index })
	b, err := json.Marshal(out)
	return b, err == nil
}

type textChoice struct {
	Text         string          `json:"text"`
	Index        int             `json:"index"`
	Logprobs     json.RawMessage `json:"logprobs"`
	FinishReason *string         `json:"finish_reason"`
}

type textCompletion struct {
	ID                string          `json:"id"`
	Object            string          `json:"object"`
	Created           int64           `json:"created"`
	Model             string          `json:"model"`
	Choices           []*textChoice   `json:"choices"`
	Usage             json.RawMessage `json:"usage,omitempty"`
	SystemFingerprint string          `json:"system_fingerprint,omitempty"`
}

func mergeText(payloads [][]byte) (json.RawMessage, bool) {
	out := textCompletion{Object: "text_completion"}
	choices := map[int]*textChoice{}
	for _, p := range payloads {
		var c chatChunk
		if json.Unmarshal(p, &c) != nil || c.Object != "text_completion" {
			continue
		}
		if out.ID == "" {
			out.ID, out.Created, out.Model = c.ID, c.Created, c.Model
		}
		if c.SystemFingerprint != "" {
			out.SystemFingerprint = c.SystemFingerprint
		}
		if len(c.Usage) > 0 && !bytes.Equal(c.Usage, []byte("null")) {
			out.Usage = c.Usage
		}
		for _, ch := range c.Choices {
			m := choices[ch.Index]
			if m == nil {
				m = &textChoice{Index: ch.Index, Logprobs: json.RawMessage("null")}
				choices[ch.Index] = m
			}
			if ch.Text != nil {
				m.Text += *ch.Text
			}
			if ch.FinishReason != nil {
				m.FinishReason = ch.FinishReason
			}
		}
	}
	for _, m := range choices {
		out.Choices = append(out.Choices, m)
	}
	sort.Slice(out.Choices, func(i, j int) bool { return out.Choices[i].Index < out.Choices[j].Index })
	b, err := json.Marshal(out)
	return b, err == nil
}

func mergeResponses(payloads [][]byte) (json.RawMessage, bool) {
	var last json.RawMessage
	for _, p := range payloads {
		var ev struct {
			Type     string          `json:"type"`
			Response json.RawMessage `json:"response"`
		}
		if json.Unmarshal(p, &ev) != nil || len(ev.Response) == 0 || ev.Response[0] != '{' {
			continue
		}
		last = ev.Response
		if ev.Type == "response.completed" {
			break
		}
	}
	if last == nil {
		return nil, false
	}
	return compact(last), true
}
