package jsonscan

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
)

type kv struct {
	key   string
	value string
}

// decoderMembers is the reference split: encoding/json's Decoder, token by
// token, as the proxy did before this package.
func decoderMembers(data []byte) ([]kv, bool) {
	if !json.Valid(data) {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, false
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, false
	}
	var out []kv
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, false
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, false
		}
		out = append(out, kv{tok.(string), string(raw)})
	}
	if _, err := dec.Token(); err != nil {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false
	}
	return out, true
}

func scanMembers(data []byte) ([]kv, error) {
	var out []kv
	err := Members(data, func(k, v []byte) error {
		out = append(out, kv{string(k), string(v)})
		return nil
	})
	return out, err
}

// check asserts Valid and Members agree with encoding/json on data.
func check(t *testing.T, data []byte) {
	t.Helper()
	if got, want := Valid(data), json.Valid(data); got != want {
		t.Fatalf("Valid(%q) = %v, json.Valid = %v", data, got, want)
	}
	want, isObject := decoderMembers(data)
	got, err := scanMembers(data)
	switch {
	case isObject && err != nil:
		t.Fatalf("Members(%q): %v; encoding/json splits it into %q", data, err, want)
	case !isObject && err == nil:
		t.Fatalf("Members(%q) accepted %q; encoding/json does not see a valid object", data, got)
	case !isObject && json.Valid(data) && !errors.Is(err, ErrNotObject):
		t.Fatalf("Members(%q) = %v, want ErrNotObject", data, err)
	case isObject && !equal(got, want):
		t.Fatalf("Members(%q) = %q, encoding/json = %q", data, got, want)
	}
}

// checkElements asserts Elements splits arrays as json.Unmarshal into
// []json.RawMessage does (values compacted by neither: compared raw).
func checkElements(t *testing.T, data []byte) {
	t.Helper()
	var want []json.RawMessage
	isArray := json.Valid(data) && bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("[")) && json.Unmarshal(data, &want) == nil
	var got []string
	err := Elements(data, func(v []byte) error { got = append(got, string(v)); return nil })
	switch {
	case isArray && err != nil:
		t.Fatalf("Elements(%q): %v; encoding/json splits it", data, err)
	case !isArray && err == nil:
		t.Fatalf("Elements(%q) accepted %q; encoding/json does not see a valid array", data, got)
	case !isArray && json.Valid(data) && !errors.Is(err, ErrNotArray):
		t.Fatalf("Elements(%q) = %v, want ErrNotArray", data, err)
	case isArray:
		if len(got) != len(want) {
			t.Fatalf("Elements(%q) = %q, encoding/json = %q", data, got, want)
		}
		for i := range got {
			if got[i] != string(want[i]) {
				t.Fatalf("Elements(%q) = %q, encoding/json = %q", data, got, want)
			}
		}
	}
}

func equal(a, b []kv) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

var cases = []string{
	`{}`, ` { } `, `{"a":1}`, "\t{\"a\" :\n 1 , \"b\":[1,2,{\"c\":null}]}\r\n",
	`{"model":"gpt-4o","messages":[{"role":"user","content":"hi \"there\" \\ \u00e9"}],"stream":true}`,
	`{"a\u0041":1}`, `{"\ud83d\ude00":"emoji key"}`, `{"a":"\ud800"}`, `{"k":"\u00"}`, `{"k":"\x"}`,
	`{"a":1,}`, `{,}`, `{"a"}`, `{"a":}`, `{"a" 1}`, `{"a":1 "b":2}`, `{"a":1}}`, `{"a":1}x`, `{"a":1`,
	`{1:2}`, `{'a':1}`, `[1,2]`, `"str"`, `12`, `null`, `true`, ``, `   `, `{`, `}`, `[`, `[1,]`, `[,1]`,
	`{"n":-0}`, `{"n":-}`, `{"n":01}`, `{"n":1.}`, `{"n":.5}`, `{"n":1e}`, `{"n":1e+}`, `{"n":1E-7}`,
	`{"n":-1.25e+10}`, `{"n":+1}`, `{"n":Infinity}`, `{"n":NaN}`, `{"t":tru}`, `{"t":nul}`, `{"t":falsey}`,
	"{\"ctl\":\"a\x01b\"}", "{\"tab\":\"a\tb\"}", "{\"bad utf8\":\"\xff\xfe\"}", "{\"\xff\":1}",
	`{"dup":1,"dup":2}`, `{"nested":{"deep":[[[[{}]]]]}}`, `{"a":[]}`, `{"a":[ ]}`, `{"a":{ }}`,
	`[]`, ` [ ] `, `[1, "two", {"three":3}, [4], null, true]`, `[1 2]`, `[1,2,]`, `[[]`, `[{"a":1}]x`,
	`{"a":[1 2]}`, `{"a":{"b":1,}}`, `{"a":{"b" 1}}`, `{"a":{1:1}}`, `{"a":"x"` + "\x00" + `}`,
	"\xef\xbb\xbf{}", `{"a":1}` + "\u00a0",
}

func TestAgreesWithEncodingJSON(t *testing.T) {
	for _, c := range cases {
		check(t, []byte(c))
		checkElements(t, []byte(c))
	}
}

func TestNestingLimitIsEncodingJSONs(t *testing.T) {
	for _, depth := range []int{maxDepth - 1, maxDepth, maxDepth + 1} {
		arr := strings.Repeat("[", depth) + strings.Repeat("]", depth)
		if got, want := Valid([]byte(arr)), json.Valid([]byte(arr)); got != want {
			t.Errorf("depth %d arrays: Valid = %v, json.Valid = %v", depth, got, want)
		}
		// Inside an object member the object itself counts as a level.
		obj := `{"a":` + strings.Repeat("[", depth-1) + strings.Repeat("]", depth-1) + `}`
		check(t, []byte(obj))
	}
}

func TestMembersStopsOnCallbackError(t *testing.T) {
	stop := errors.New("stop")
	var seen []string
	err := Members([]byte(`{"a":1,"b":2,"c":`), func(k, _ []byte) error {
		seen = append(seen, string(k))
		if string(k) == "b" {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || strings.Join(seen, ",") != "a,b" {
		t.Fatalf("err %v, seen %v; want stop after a,b", err, seen)
	}
}

func TestSyntaxErrorSaysWhere(t *testing.T) {
	err := Members([]byte(`{"a":1,"b":}`), func(_, _ []byte) error { return nil })
	var se *SyntaxError
	if !errors.As(err, &se) || se.Offset != 11 {
		t.Fatalf("err = %v, want a SyntaxError at offset 11", err)
	}
}

func TestScalars(t *testing.T) {
	strs := []struct {
		raw  string
		want string
		ok   bool
	}{
		{`"gpt-4o"`, "gpt-4o", true},
		{`"a\"b"`, `a"b`, true},
		{`"\u00e9t\u00e9"`, "été", true},
		{`"été"`, "été", true},
		{"\"\xff\"", "\ufffd", true},
		{`""`, "", true},
		{`12`, "", false},
		{`"unterminated`, "", false},
		{`null`, "", false},
	}
	for _, c := range strs {
		got, ok := String([]byte(c.raw))
		if got != c.want || ok != c.ok {
			t.Errorf("String(%s) = %q, %v; want %q, %v", c.raw, got, ok, c.want, c.ok)
		}
	}
	bools := []struct {
		raw   string
		v, ok bool
	}{{"true", true, true}, {"false", false, true}, {`"true"`, false, false}, {"1", false, false}}
	for _, c := range bools {
		if v, ok := Bool([]byte(c.raw)); v != c.v || ok != c.ok {
			t.Errorf("Bool(%s) = %v, %v; want %v, %v", c.raw, v, ok, c.v, c.ok)
		}
	}
	ints := []struct {
		raw string
		v   int64
		ok  bool
	}{{"42", 42, true}, {"-7", -7, true}, {"1.5", 0, false}, {"1e3", 0, false}, {`"3"`, 0, false}, {"99999999999999999999", 0, false}}
	for _, c := range ints {
		if v, ok := Int([]byte(c.raw)); v != c.v || ok != c.ok {
			t.Errorf("Int(%s) = %v, %v; want %v, %v", c.raw, v, ok, c.v, c.ok)
		}
	}
}

func TestMembersAllocatesNothingForPlainKeys(t *testing.T) {
	body := []byte(`{"model":"gpt-4o-mini","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Say hello"}],"max_tokens":16,"stream":false}`)
	n := 0
	allocs := testing.AllocsPerRun(100, func() {
		_ = Members(body, func(_, _ []byte) error { n++; return nil })
	})
	if allocs != 0 {
		t.Fatalf("Members allocated %.0f times per call, want 0", allocs)
	}
}

func FuzzAgreesWithEncodingJSON(f *testing.F) {
	for _, c := range cases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		check(t, data)
		checkElements(t, data)
	})
}

func BenchmarkMembers(b *testing.B) {
	body := []byte(`{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant. Answer briefly and precisely."},{"role":"user","content":"Write a haiku about reverse proxies, with \"quotes\" and a newline\nplease."}],"max_tokens":64,"temperature":0.2,"stream":false,"user":"bench"}`)
	b.Run("jsonscan", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			_ = Members(body, func(_, _ []byte) error { return nil })
		}
	})
	b.Run("encoding-json-decoder", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			decoderMembers(body)
		}
	})
}
