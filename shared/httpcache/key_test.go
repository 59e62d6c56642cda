package httpcache

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/llm-proxy/llm-proxy/shared/sse"
)

func TestBodyDigest(t *testing.T) {
	d := func(s string) string { return string(bodyDigest([]byte(s), nil)) }
	same := [][2]string{
		{`{"a":1,"b":[1,2]}`, " {\n\"b\" : [1, 2],\t\"a\":1}\n"},
		{`{"t":0.5}`, `{"t":5e-1}`},
		{`{"t":1}`, `{"t":1.0}`},
		{`{"t":100}`, `{"t":1E2}`},
		{`{"s":"é"}`, `{"s":"\u00e9"}`},
		{`{"x":{"b":1,"a":2}}`, `{"x":{"a":2,"b":1}}`},
		{`[1,{"b":null,"a":true}]`, `[1,{"a":true,"b":null}]`},
	}
	for _, p := range same {
		if d(p[0]) != d(p[1]) {
			t.Errorf("%s and %s differ", p[0], p[1])
		}
	}
	different := [][2]string{
		{`{"a":1}`, `{"a":"1"}`},
		{`{"a":[1,2]}`, `{"a":[2,1]}`},
		{`{"a":null}`, `{}`},
		{`{"a":true}`, `{"a":1}`},
		{`{"a":12345678901234567890}`, `{"a":12345678901234567891}`},
		{`{"a":0.1}`, `{"a":0.10000000000000001}`},
		{`{"a":"x","b":"y"}`, `{"a":"xb","":"y"}`},
		{`{"a":1}`, `{"a":1} {"a":1}`}, // trailing value: raw
		{`not json`, `not  json`},      // raw bodies are hashed as sent
		{``, `{}`},
		{`{"a":1e999999999}`, `{"a":1e999999998}`}, // huge exponents kept as text
	}
	for _, p := range different {
		if d(p[0]) == d(p[1]) {
			t.Errorf("%s and %s collide", p[0], p[1])
		}
	}
}

func TestRequestScope(t *testing.T) {
	s := func(project, method, path, q, body string) string {
		return requestScope(project, method, path, q, []byte(body))
	}
	if s("p", "GET", "/v1/models", "b=2&a=1&a=0", "") != s("p", "GET", "/v1/models", "a=0&a=1&b=2", "") {
		t.Error("query order matters")
	}
	if s("p", "GET", "/v1/models", "a=1", "") == s("p", "GET", "/v1/models", "a=2", "") {
		t.Error("query values ignored")
	}
	if s("p", "HEAD", "/x", "", "") != s("p", "GET", "/x", "", "") {
		t.Error("HEAD not keyed as GET")
	}
	if s("p", "POST", "/x", "", "{}") == s("q", "POST", "/x", "", "{}") {
		t.Error("projects share a key")
	}
	if !strings.HasPrefix(s("p", "POST", "/x", "", "{}"), projectScope("p")) {
		t.Error("request scope outside project scope")
	}
	k := variantKey(baseKey(s("p", "POST", "/x", "", "{}"), true), []string{"A"}, httptest.NewRequest("GET", "/", nil))
	if !isEntryKey(k) || isEntryKey(baseKey(s("p", "POST", "/x", "", "{}"), true)) {
		t.Error("isEntryKey")
	}
}

func TestEntryRoundTrip(t *testing.T) {
	e := &entry{Status: 201, Stream: true, StoredAt: time.Unix(10, 5), Expires: time.Unix(70, 0),
		Header: http.Header{"Content-Type": {"text/event-stream"}, "X-A": {"1", "2"}}, Body: []byte("data: x\n\n")}
	got, vr, err := decodeRecord(e.encode())
	if err != nil || vr != nil {
		t.Fatal(err)
	}
	if got.Status != 201 || !got.Stream || !got.StoredAt.Equal(e.StoredAt) || !got.Expires.Equal(e.Expires) ||
		got.Header.Get("Content-Type") != "text/event-stream" || len(got.Header["X-A"]) != 2 || !bytes.Equal(got.Body, e.Body) {
		t.Fatalf("round trip: %+v", got)
	}
	v := &varyRecord{Names: []string{"Accept-Encoding", "X-B"}}
	_, gv, err := decodeRecord(v.encode())
	if err != nil || len(gv.Names) != 2 || gv.Names[1] != "X-B" {
		t.Fatalf("vary round trip: %+v %v", gv, err)
	}
	enc := e.encode()
	for i := range len(enc) { // every truncation is rejected, never a panic
		if _, _, err := decodeRecord(enc[:i]); err == nil {
			t.Fatalf("truncated record of %d bytes accepted", i)
		}
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add((&entry{Status: 200, Body: []byte("x")}).encode())
	f.Add((&varyRecord{Names: []string{"A"}}).encode())
	f.Fuzz(func(t *testing.T, b []byte) { decodeRecord(b) })
}

func TestSSEEvents(t *testing.T) {
	body := "data: a\n\n: keep-alive\n\nevent: x\r\ndata: b\r\n\r\ndata: [DONE]\n\n"
	var evs []string
	for ev := range sse.Events([]byte(body)) {
		evs = append(evs, string(ev))
	}
	if strings.Join(evs, "") != body || len(evs) != 4 {
		t.Fatalf("events %q", evs)
	}
	if got := string(stripComments([]byte(body))); got != "data: a\n\nevent: x\r\ndata: b\r\n\r\ndata: [DONE]\n\n" {
		t.Fatalf("stripComments %q", got)
	}
	for _, tc := range []struct {
		path, body string
		want       bool
	}{
		{"/v1/chat/completions", "data: a\n\ndata: [DONE]\n\n", true},
		{"/v1/chat/completions", "data: a\n\ndata: [DONE]\n\n: keep-alive\n\n", true},
		{"/v1/chat/completions", "data: a\n\n", false},
		{"/v1/chat/completions", "data: a\n\ndata: [DONE]\n", false},
		{"/v1/responses", "event: response.created\ndata: {}\n\nevent: response.completed\ndata: {\"type\":\"response.completed\"}\n\n", true},
		{"/v1/responses", "event: response.created\ndata: {}\n\n", false},
		{"/v1/other", "data: a\n\n", true},
		{"/v1/other", "data: a\n\ndata: {\"error\":{\"code\":\"stream_interrupted\"}}\n\n", false},
		{"/v1/other", "", false},
	} {
		if got := streamFinished(tc.path, []byte(tc.body)); got != tc.want {
			t.Errorf("streamFinished(%s, %q) = %v", tc.path, tc.body, got)
		}
	}
}

// body10KB is a realistic 10 KB chat request.
func body10KB() []byte {
	var b strings.Builder
	b.WriteString(`{"model":"gpt-4o-mini","temperature":0.2,"max_tokens":256,"messages":[`)
	for i := 0; b.Len() < 10_000; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"role":"user","content":"message %d: the quick brown fox jumps over the lazy dog, again and again"}`, i)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

func BenchmarkKey10KB(b *testing.B) {
	body := body10KB()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		requestScope("proj", "POST", "/v1/chat/completions", "", body)
	}
}

func BenchmarkMemoryHit(b *testing.B) {
	c := New(NewMemory(64<<20, nil), Options{}, nil)
	next := func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"object":"list","data":[{"embedding":[0.1,0.2,0.3]}]}`))
		return true
	}
	body := []byte(`{"model":"text-embedding-3-small","input":"hello world"}`)
	serve := func() *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/v1/embeddings", bytes.NewReader(body))
		r.Header.Set("Cache-Control", "public, max-age=600")
		w := httptest.NewRecorder()
		c.Serve(w, r, Request{ProjectID: "proj", Body: body}, next)
		return w
	}
	serve()
	b.ReportAllocs()
	for b.Loop() {
		if w := serve(); w.Header().Get(HeaderProxyCache) != "hit" {
			b.Fatal("not a hit")
		}
	}
}
