package usage

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/sse"
	"github.com/pkoukk/tiktoken-go"
	tiktoken_loader "github.com/pkoukk/tiktoken-go-loader"
)

// FuzzStreamObserve: Observe takes any event data, from any stream, without
// panicking.
func FuzzStreamObserve(f *testing.F) {
	f.Add([]byte(`{"choices":[{"delta":{"content":"x"}}],"usage":null}`))
	f.Add([]byte(`{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}`))
	f.Add([]byte(`{"type":"response.completed","response":{"usage":{"input_tokens":1}}}`))
	f.Add([]byte("[DONE]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s := NewStream(128)
		s.Observe(data)
		s.Observe(data)
		if text, _ := s.Text(); len(text) > 128 {
			t.Fatalf("%d bytes of text kept, bound 128", len(text))
		}
	})
}

func TestFromJSON(t *testing.T) {
	u, _, ok := FromJSON([]byte(`{"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,
		"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":2}}}`))
	want := llmproxy.Usage{PromptTokens: 10, CompletionTokens: 5, TotalTokens: 15, CachedTokens: 4, ReasoningTokens: 2, Source: llmproxy.UsageReported}
	if !ok || u != want {
		t.Fatalf("chat usage = %+v %v", u, ok)
	}
	u, _, ok = FromJSON([]byte(`{"object":"response","usage":{"input_tokens":7,"output_tokens":3,"total_tokens":10,
		"input_tokens_details":{"cached_tokens":1},"output_tokens_details":{"reasoning_tokens":2}}}`))
	want = llmproxy.Usage{PromptTokens: 7, CompletionTokens: 3, TotalTokens: 10, CachedTokens: 1, ReasoningTokens: 2, Source: llmproxy.UsageReported}
	if !ok || u != want {
		t.Fatalf("responses usage = %+v %v", u, ok)
	}
	u, _, ok = FromJSON([]byte(`{"usage":{"prompt_tokens":8,"total_tokens":8}}`))
	if !ok || u.PromptTokens != 8 || u.TotalTokens != 8 {
		t.Fatalf("embeddings usage = %+v", u)
	}
	_, text, ok := FromJSON([]byte(`{"choices":[{"message":{"content":"Hello"}},{"message":{"content":" there"}}]}`))
	if ok || text != "Hello there" {
		t.Fatalf("text = %q ok=%v", text, ok)
	}
	_, text, _ = FromJSON([]byte(`{"output":[{"type":"message","content":[{"type":"output_text","text":"Hi"}]}]}`))
	if text != "Hi" {
		t.Fatalf("responses text = %q", text)
	}
}

func TestStream(t *testing.T) {
	s := NewStream(0)
	events := []string{
		`{"choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"}}],"usage":null}`,
		`{"choices":[{"index":0,"delta":{"content":"lo"}}],"usage":null}`,
		`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"name":"f","arguments":"{}"}}]}}]}`,
		`{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}`,
		`[DONE]`,
	}
	var usageOnly []bool
	for _, e := range events {
		usageOnly = append(usageOnly, s.Observe([]byte(e)))
	}
	if fmt.Sprint(usageOnly) != "[false false false true false]" {
		t.Fatalf("usage-only flags = %v", usageOnly)
	}
	u, ok := s.Reported()
	if !ok || u.TotalTokens != 5 || !s.Done() {
		t.Fatalf("reported = %+v %v done=%v", u, ok, s.Done())
	}
	if text, _ := s.Text(); text != "Hello"+"f{}" {
		t.Fatalf("text = %q", text)
	}

	r := NewStream(4)
	r.Observe([]byte(`{"type":"response.output_text.delta","delta":"Hello"}`))
	r.Observe([]byte(`{"type":"response.completed","response":{"usage":{"input_tokens":2,"output_tokens":1,"total_tokens":3}}}`))
	if u, ok := r.Reported(); !ok || u.PromptTokens != 2 || !r.Done() {
		t.Fatalf("responses stream = %+v", u)
	}
	if text, extra := r.Text(); text != "Hell" || extra != 1 {
		t.Fatalf("bounded text = %q +%d", text, extra)
	}
}

func TestCounter(t *testing.T) {
	c := NewCounter()
	c.Warm()
	if EncodingFor("gpt-4o-mini") != O200KBase || EncodingFor("o3") != O200KBase || EncodingFor("gpt-5") != O200KBase ||
		EncodingFor("gpt-3.5-turbo") != CL100KBase || EncodingFor("gpt-4-0613") != CL100KBase || EncodingFor("text-embedding-3-small") != CL100KBase ||
		EncodingFor("davinci") != "r50k_base" || EncodingFor("my-local-llama") != O200KBase {
		t.Fatal("model to encoding mapping wrong")
	}
	// Known tiktoken counts.
	if n := c.Count("gpt-4o", "hello world"); n != 2 {
		t.Fatalf("o200k hello world = %d", n)
	}
	if n := c.Count("gpt-3.5-turbo", "tiktoken is great!"); n != 6 {
		t.Fatalf("cl100k = %d", n)
	}
	// The cookbook's example: these messages are 129 prompt tokens for
	// gpt-3.5-turbo-0613 / gpt-4-0613 (as reported by the API).
	body := `{"model":"gpt-4-0613","messages":[
{"role":"system","content":"You are a helpful, pattern-following assistant that translates corporate jargon into plain English."},
{"role":"system","name":"example_user","content":"New synergies will help drive top-line growth."},
{"role":"system","name":"example_assistant","content":"Things working well together will increase revenue."},
{"role":"system","name":"example_user","content":"Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage."},
{"role":"system","name":"example_assistant","content":"Let's talk later when we're less busy about how to do better."},
{"role":"user","content":"This late pivot means we don't have time to boil the ocean for the client deliverable."}]}`
	if n := c.PromptTokens("", []byte(body)); n != 129 {
		t.Fatalf("cookbook prompt = %d, want 129", n)
	}
	if n := c.PromptTokens("gpt-4o", []byte(`{"input":["hello world","hello world"]}`)); n != 4 {
		t.Fatalf("embeddings input = %d", n)
	}
	if n := c.PromptTokens("gpt-4o", []byte(`{"input":[[1,2,3]]}`)); n != 3 {
		t.Fatalf("token-id input = %d", n)
	}
	if n := c.PromptTokens("gpt-4o", []byte(`{"messages":[{"role":"user","content":[{"type":"text","text":"hello world"}]}]}`)); n != 3+1+2+3 {
		t.Fatalf("content parts = %d", n)
	}
	if n := c.PromptTokens("gpt-4o", []byte(`not json`)); n != 0 {
		t.Fatalf("garbage = %d", n)
	}
	big := strings.Repeat("hello world ", 50000)
	if n := c.Count("gpt-4o", big); n < 90000 || n > 110000 {
		t.Fatalf("extrapolated count = %d", n)
	}
	e := c.Estimate("gpt-4o", 10, "hello world", 8)
	if e.CompletionTokens != 4 || e.TotalTokens != 14 || e.Source != llmproxy.UsageEstimated {
		t.Fatalf("estimate = %+v", e)
	}
}

// TestEncodingForMatchesTiktoken: every model in tiktoken's own table maps
// to tiktoken's encoding (gpt2, which OpenAI's API never served, excepted),
// and legacy models count with their own encoding.
func TestEncodingForMatchesTiktoken(t *testing.T) {
	for model, want := range tiktoken.MODEL_TO_ENCODING {
		if want == "gpt2" {
			continue
		}
		for _, name := range []string{model, strings.ToUpper(model), "openai/" + model} {
			if got := EncodingFor(name); got != want {
				t.Errorf("EncodingFor(%q) = %s, tiktoken says %s", name, got, want)
			}
		}
	}
	if got := EncodingFor("gpt2"); got != O200KBase {
		t.Errorf("EncodingFor(gpt2) = %s, want the default %s", got, O200KBase)
	}
	// Legacy models count as tiktoken-go does with their own encoding.
	tiktoken.SetBpeLoader(tiktoken_loader.NewOfflineLoader())
	c := NewCounter()
	text := "Straße ẞ and 1234567 spaces    here, it's\r\n\tdone"
	for _, model := range []string{"davinci", "text-davinci-003", "code-davinci-edit-001", "gpt-4", "gpt-4o"} {
		tk, err := tiktoken.EncodingForModel(model)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := c.Count(model, text), len(tk.EncodeOrdinary(text)); got != int64(want) {
			t.Errorf("Count(%s) = %d, tiktoken-go %d", model, got, want)
		}
	}
}

func TestMaxOutputTokens(t *testing.T) {
	tests := map[string]int64{
		`{"max_tokens":100}`:                 100,
		`{"max_completion_tokens":50,"n":2}`: 100,
		`{"max_output_tokens":7}`:            7,
		`{}`:                                 0,
		`[]`:                                 0,
		`{"max_tokens":-1}`:                  0,
		`{"max_tokens":10,"max_completion_tokens":20}`: 20,
	}
	for in, want := range tests {
		if got := MaxOutputTokens([]byte(in)); got != want {
			t.Errorf("MaxOutputTokens(%s) = %d, want %d", in, got, want)
		}
	}
}

// TestFieldsMatchBody: counting from members set one by one (as the proxy
// does from its own parse) gives what counting the body gives, type
// mismatches included.
func TestFieldsMatchBody(t *testing.T) {
	c := NewCounter()
	c.Warm()
	bodies := []string{
		`{"model":"gpt-4o","messages":[{"role":"user","name":"bob","content":"hello world"},{"role":"assistant","tool_calls":[{"id":"1"}]}],"max_tokens":10,"n":3}`,
		`{"model":"gpt-4o","input":"hello world","instructions":"be brief","tools":[{"type":"web_search"}],"max_output_tokens":5}`,
		`{"prompt":["hello","world"],"max_completion_tokens":20}`,
		`{"messages":"not an array"}`,
		`{"model":7,"prompt":"hello"}`,
		`{"instructions":1,"input":"x"}`,
		`{"max_tokens":"ten"}`,
		`{"messages":null,"tools":null,"max_tokens":null,"n":null,"input":"hello"}`,
		`{"other":{"messages":[1]}}`,
	}
	for _, body := range bodies {
		var ms map[string]json.RawMessage
		if err := json.Unmarshal([]byte(body), &ms); err != nil {
			t.Fatal(err)
		}
		var f Fields
		for k, v := range ms {
			f.Set(k, v)
		}
		for _, model := range []string{"", "gpt-4"} {
			if got, want := c.PromptTokensOf(model, f), c.PromptTokens(model, []byte(body)); got != want {
				t.Errorf("PromptTokensOf(%q, %s) = %d, PromptTokens = %d", model, body, got, want)
			}
		}
		if got, want := f.MaxOutput(), MaxOutputTokens([]byte(body)); got != want {
			t.Errorf("MaxOutput(%s) = %d, MaxOutputTokens = %d", body, got, want)
		}
	}
	if n := c.PromptTokens("", []byte(bodies[3])); n != 0 {
		t.Errorf("messages of the wrong type count %d, want 0", n)
	}
	if n := MaxOutputTokens([]byte(bodies[0])); n != 30 {
		t.Errorf("max_tokens × n = %d, want 30", n)
	}
}

func BenchmarkSSEUsageExtraction(b *testing.B) {
	var stream bytes.Buffer
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&stream, "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"token%d \"},\"finish_reason\":null}],\"usage\":null}\n\n", i)
	}
	stream.WriteString("data: {\"id\":\"chatcmpl-1\",\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":100,\"total_tokens\":110}}\n\ndata: [DONE]\n\n")
	in := stream.Bytes()
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		p := sse.NewParser(0)
		s := NewStream(0)
		for i := 0; i < len(in); i += 512 {
			_ = p.Feed(in[i:min(i+512, len(in))], func(_ []byte, ev sse.Event) { s.Observe(ev.Data) })
		}
		if u, ok := s.Reported(); !ok || u.TotalTokens != 110 {
			b.Fatal("usage not found")
		}
	}
}
