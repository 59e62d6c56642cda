package dispatcher

import (
	"encoding/json"

	"github.com/llm-proxy/llm-proxy/events"
)

// bodyJSON returns a captured body's JSON object, or nil.
func bodyJSON(b *events.Body) map[string]json.RawMessage {
	if b == nil || len(b.JSON) == 0 || b.JSON[0] != '{' {
		return nil
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(b.JSON, &m) != nil {
		return nil
	}
	return m
}

// llmInput is what the model was given: messages (chat), input (responses,
// embeddings, moderations) or prompt (completions).
func llmInput(req map[string]json.RawMessage) json.RawMessage {
	for _, k := range []string{"messages", "input", "prompt"} {
		if v, ok := req[k]; ok {
			return v
		}
	}
	return nil
}

// llmParams are the request's other fields (temperature, max_tokens, tools…).
func llmParams(req map[string]json.RawMessage) map[string]json.RawMessage {
	out := map[string]json.RawMessage{}
	for k, v := range req {
		switch k {
		case "messages", "input", "prompt", "model", "stream", "stream_options":
			continue
		}
		out[k] = v
	}
	return out
}

// llmOutput is what the model answered: the first choice's message (chat),
// text (completions), the output items (responses), else the whole body.
func llmOutput(resp map[string]json.RawMessage, raw json.RawMessage) json.RawMessage {
	if resp == nil {
		return raw
	}
	if c, ok := resp["choices"]; ok {
		var choices []map[string]json.RawMessage
		if json.Unmarshal(c, &choices) == nil && len(choices) > 0 {
			if m, ok := choices[0]["message"]; ok {
				return m
			}
			if t, ok := choices[0]["text"]; ok {
				return t
			}
		}
	}
	if o, ok := resp["output"]; ok {
		return o
	}
	return raw
}
