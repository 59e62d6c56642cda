package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"mime/multipart"
	"net/url"
	"strings"

	"github.com/llm-proxy/llm-proxy/shared/apiconfig"
	"github.com/llm-proxy/llm-proxy/shared/jsonscan"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/usage"
)

// member is one top-level member of a JSON object body, in body order.
type member struct {
	key string
	raw json.RawMessage
}

// parseObject splits a JSON object into its top-level members, validating
// the whole body. Duplicate keys are an error: upstream parsers disagree on
// which one wins, so a duplicate could slip a value past the whitelist.
// Values are slices of body.
func parseObject(body []byte) ([]member, error) {
	out := make([]member, 0, 16)
	var seen map[string]struct{} // only for bodies with many members
	err := jsonscan.Members(body, func(k, v []byte) error {
		if seen == nil && len(out) < 32 {
			for _, m := range out {
				if m.key == string(k) {
					return fmt.Errorf("duplicate key %q", k)
				}
			}
		} else {
			if seen == nil {
				seen = make(map[string]struct{}, 2*len(out))
				for _, m := range out {
					seen[m.key] = struct{}{}
				}
			}
			if _, dup := seen[string(k)]; dup {
				return fmt.Errorf("duplicate key %q", k)
			}
			seen[string(k)] = struct{}{}
		}
		out = append(out, member{keyString(k), v})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// knownKeys are the request members of the OpenAI API, kept as constants
// so that splitting a body does not allocate a string per key.
var knownKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens",
		"max_output_tokens", "temperature", "top_p", "n", "stop", "presence_penalty",
		"frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "user", "seed", "tools",
		"tool_choice", "parallel_tool_calls", "response_format", "functions", "function_call",
		"prompt", "input", "instructions", "suffix", "echo", "best_of", "encoding_format",
		"dimensions", "metadata", "store", "reasoning", "reasoning_effort", "modalities", "audio",
		"prediction", "service_tier", "text", "truncation", "previous_response_id", "include",
		"background", "prompt_cache_key", "safety_identifier", "verbosity", "web_search_options",
		"size", "quality", "style", "voice", "speed",
	} {
		m[k] = k
	}
	return m
}()

func keyString(k []byte) string {
	if s, ok := knownKeys[string(k)]; ok {
		return s
	}
	return string(k)
}

func get(ms []member, key string) (json.RawMessage, bool) {
	for _, m := range ms {
		if m.key == key {
			return m.raw, true
		}
	}
	return nil, false
}

// scalar renders a JSON value for whitelist matching: strings unquoted,
// everything else as its compact JSON text.
func scalar(raw json.RawMessage) string {
	if s, ok := jsonscan.String(raw); ok {
		return s
	}
	var b bytes.Buffer
	if json.Compact(&b, raw) == nil {
		return b.String()
	}
	return string(raw)
}

// inspection is what the proxy learns from a request body.
type inspection struct {
	model        string
	stream       bool
	members      []member // nil unless the body is a JSON object
	includeUsage bool     // stream_options.include_usage was set by the client
	// fields are the members token counting reads (from members: the body
	// is not decoded again for the reservation).
	fields usage.Fields
}

// inspect parses the body by its media type, applies the provider's
// param_whitelist and extracts the model and stream flag. A body that is
// neither multipart nor form-encoded must be a JSON object when the
// provider has a whitelist, whatever its Content-Type says.
func inspect(p *apiconfig.Provider, contentType string, body []byte) (inspection, error) {
	var in inspection
	if len(bytes.TrimSpace(body)) == 0 {
		return in, nil
	}
	mt, params, _ := mime.ParseMediaType(contentType)
	switch mt {
	case "multipart/form-data":
		form, err := multipart.NewReader(bytes.NewReader(body), params["boundary"]).ReadForm(1 << 20)
		if err != nil {
			if len(p.ParamWhitelist) == 0 {
				return in, nil
			}
			return in, llmproxy.E(llmproxy.ErrInvalid, codeInvalidBody, "the multipart body could not be parsed")
		}
		defer form.RemoveAll()
		for field, vals := range form.Value {
			if field == "model" && len(vals) > 0 {
				in.model = vals[0]
			}
			if field == "stream" && len(vals) > 0 {
				in.stream = vals[0] == "true"
			}
			if err := checkParam(p, field, vals); err != nil {
				return in, err
			}
		}
		return in, nil
	case "application/x-www-form-urlencoded":
		vals, err := url.ParseQuery(string(body))
		if err != nil {
			if len(p.ParamWhitelist) == 0 {
				return in, nil
			}
			return in, llmproxy.E(llmproxy.ErrInvalid, codeInvalidBody, "the form body could not be parsed")
		}
		in.model = vals.Get("model")
		for field, vs := range vals {
			if err := checkParam(p, field, vs); err != nil {
				return in, err
			}
		}
		return in, nil
	}
	ms, err := parseObject(body)
	if err != nil {
		if len(p.ParamWhitelist) == 0 {
			return in, nil // not ours to judge: upstream answers
		}
		return in, llmproxy.Wrap(llmproxy.ErrInvalid, codeInvalidBody, "the request body must be a JSON object", err)
	}
	in.members = ms
	for _, m := range ms {
		in.fields.Set(m.key, m.raw)
		if _, listed := p.ParamWhitelist[m.key]; listed {
			if err := checkParam(p, m.key, []string{scalar(m.raw)}); err != nil {
				return in, err
			}
		}
	}
	if raw, ok := get(ms, "model"); ok {
		in.model, _ = jsonscan.String(raw)
	}
	if raw, ok := get(ms, "stream"); ok {
		in.stream, _ = jsonscan.Bool(raw)
	}
	if raw, ok := get(ms, "stream_options"); ok {
		var so struct {
			IncludeUsage bool `json:"include_usage"`
		}
		_ = json.Unmarshal(raw, &so)
		in.includeUsage = so.IncludeUsage
	}
	return in, nil
}

func checkParam(p *apiconfig.Provider, field string, vals []string) error {
	for _, v := range vals {
		if !p.ParamAllowed(field, v) {
			return llmproxy.E(llmproxy.ErrInvalid, codeParamNotAllowed,
				fmt.Sprintf("Parameter '%s' value '%s' is not allowed. Allowed patterns: [%s]",
					field, truncate(v, 100), strings.Join(p.ParamWhitelist[field], " ")))
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// withIncludeUsage rebuilds a JSON object body with
// stream_options.include_usage set to true, keeping every other member (and
// every other stream_options member) as it was.
func withIncludeUsage(ms []member) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	found := false
	for i, m := range ms {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(m.key)
		b.Write(k)
		b.WriteByte(':')
		if m.key != "stream_options" {
			b.Write(m.raw)
			continue
		}
		found = true
		so := map[string]json.RawMessage{}
		if err := json.Unmarshal(m.raw, &so); err != nil || so == nil {
			so = map[string]json.RawMessage{}
		}
		so["include_usage"] = json.RawMessage("true")
		v, err := json.Marshal(so)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	if !found {
		if len(ms) > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"stream_options":{"include_usage":true}`)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}
