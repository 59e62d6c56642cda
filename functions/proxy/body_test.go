package proxy

import (
	"encoding/json"
	"testing"

	"github.com/llm-proxy/llm-proxy/shared/apiconfig"
)

// FuzzInspect checks that no JSON body accepted by the whitelist carries a
// model that the upstream (any JSON parser: first or last duplicate wins)
// would read as a model outside the whitelist.
func FuzzInspect(f *testing.F) {
	p, err := apiconfig.Parse([]byte(`
apis:
  x:
    base_url: https://h
    allowed_endpoints: [/v1/chat/completions]
    allowed_methods: [POST]
    param_whitelist:
      model: [gpt-4o, "gpt-4o-*"]
`), "")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		`{"model":"gpt-4o"}`, `{"model":"gpt-4o","model":"gpt-3.5"}`, `{"model":"gpt-4\u006f"}`,
		`{"Model":"gpt-3.5"}`, `{"model":"gpt-4o"} {"model":"x"}`, `[{"model":"x"}]`, `{"model":["gpt-4o"]}`,
	} {
		f.Add(s, "application/json; charset=utf-8")
	}
	f.Fuzz(func(t *testing.T, body, ct string) {
		in, err := inspect(p, ct, []byte(body))
		if err != nil || in.members == nil {
			return
		}
		var m map[string]any
		if json.Unmarshal([]byte(body), &m) != nil {
			t.Fatalf("accepted a body Go cannot parse: %q", body)
		}
		if v, ok := m["model"]; ok {
			s, isStr := v.(string)
			if !isStr || !p.ParamAllowed("model", s) {
				t.Fatalf("accepted model %v in %q", v, body)
			}
		}
	})
}
