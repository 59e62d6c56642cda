package proxy

import (
	"encoding/json"
	"testing"
)

func TestWithoutNullUsage(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string // want "" : not rewritten
	}{
		{"last member", `{"id":"c1","choices":[{"delta":{"content":"hi"}}],"usage":null}`, `{"id":"c1","choices":[{"delta":{"content":"hi"}}]}`},
		{"first member", `{"usage":null,"id":"c1"}`, `{"id":"c1"}`},
		{"middle member", `{"id":"c1","usage":null,"model":"m"}`, `{"id":"c1","model":"m"}`},
		{"only member", `{"usage":null}`, `{}`},
		{"whitespace kept around the rest", `{ "id" : "c1" , "usage" : null , "x" : 1 }`, `{ "id" : "c1" , "x" : 1 }`},
		{"first with whitespace", "{\n \"usage\": null,\n \"id\": 1}", "{\n \"id\": 1}"},
		{"other bytes kept as they are", `{"a":"<\u00e9>","usage":null}`, `{"a":"<\u00e9>"}`},
		{"nested usage:null is not top-level", `{"x":{"usage":null}}`, ""},
		{"usage with data", `{"usage":{"total_tokens":3}}`, ""},
		{"usage twice", `{"usage":null,"usage":null}`, ""},
		{"escaped key", `{"us\u0061ge":null,"id":1}`, `{"id":1}`},
		{"not an object", `[1]`, ""},
		{"invalid after the member", `{"usage":null,"id":}`, ""},
		{"no usage", `{"id":1}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := []byte("data: ")
			got, ok := withoutNullUsage(prefix, []byte(tc.in))
			if tc.want == "" {
				if ok || string(got) != "data: " {
					t.Fatalf("rewritten to %q, %v; want it left alone", got, ok)
				}
				return
			}
			if !ok || string(got) != "data: "+tc.want {
				t.Fatalf("got %q, %v; want %q", got, ok, "data: "+tc.want)
			}
			if !json.Valid(got[len(prefix):]) {
				t.Fatalf("%q is not valid JSON", got)
			}
		})
	}
}

func BenchmarkWithoutNullUsage(b *testing.B) {
	chunk := []byte(`{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","system_fingerprint":"fp_bench","choices":[{"index":0,"delta":{"content":"word "},"logprobs":null,"finish_reason":null}],"usage":null}`)
	dst := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := withoutNullUsage(dst[:0], chunk); !ok {
			b.Fatal("not rewritten")
		}
	}
}
