package httpcache

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"hash"
	"io"
	"sort"
	"strings"
	"testing"
	"unicode/utf8"
)

// The reference canonicaliser: decode with encoding/json (UseNumber) and hash
// the tree. canonicalJSON must produce exactly the same stream.

func decodeJSON(body []byte) (any, bool) {
	t := bytes.TrimLeft(body, " \t\r\n")
	if len(t) == 0 || (t[0] != '{' && t[0] != '[') {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(t))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF { // trailing data: not one JSON value
		return nil, false
	}
	return v, true
}

// canon writes a JSON value into a hash unambiguously: a type tag, then
// length-prefixed content; object keys sorted; numbers as exact rationals so
// 1.0, 1 and 1e0 are one value.
type canon struct {
	h   hash.Hash
	buf [binary.MaxVarintLen64]byte
}

func (c *canon) tag(b byte) { c.h.Write([]byte{b}) }

func (c *canon) str(s string) {
	c.h.Write(c.buf[:binary.PutUvarint(c.buf[:], uint64(len(s)))])
	io.WriteString(c.h, s)
}

func (c *canon) value(v any) {
	switch x := v.(type) {
	case nil:
		c.tag('z')
	case bool:
		if x {
			c.tag('t')
		} else {
			c.tag('f')
		}
	case string:
		c.tag('s')
		c.str(x)
	case json.Number:
		c.tag('n')
		c.str(canonicalNumber(string(x)))
	case []any:
		c.tag('a')
		for _, e := range x {
			c.value(e)
		}
		c.tag(']')
	case map[string]any:
		c.tag('o')
		c.h.Write(c.buf[:binary.PutUvarint(c.buf[:], uint64(len(x)))])
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			c.str(k)
			c.value(x[k])
		}
	}
}

func referenceDigest(body []byte) ([]byte, bool) {
	v, ok := decodeJSON(body)
	if !ok {
		return nil, false
	}
	h := sha256.New()
	c := canon{h: h}
	c.value(v)
	return h.Sum(nil), true
}

func fastDigest(body []byte) ([]byte, bool) {
	c, ok := canonicalJSON(body)
	if !ok {
		return nil, false
	}
	sum := sha256.Sum256(c)
	return sum[:], true
}

// depthOf is the nesting of containers in a decoded value (a scalar: 0).
func depthOf(v any) int {
	d := 0
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			d = max(d, depthOf(e))
		}
		return d + 1
	case map[string]any:
		for _, e := range x {
			d = max(d, depthOf(e))
		}
		return d + 1
	}
	return 0
}

func checkSameAsReference(t *testing.T, body []byte) {
	t.Helper()
	if !utf8.Valid(body) {
		return // encoding/json replaces invalid UTF-8; we hash it as sent
	}
	want, wok := referenceDigest(body)
	if v, ok := decodeJSON(body); ok && depthOf(v) > maxCanonDepth {
		wok, want = false, nil // hashed raw: too deep to canonicalise
	}
	got, gok := fastDigest(body)
	if wok != gok || !bytes.Equal(want, got) {
		t.Fatalf("canonicalJSON(%q): ok=%v, reference ok=%v, same=%v", body, gok, wok, bytes.Equal(want, got))
	}
}

var canonSeeds = []string{
	`{"a":1,"b":[1,2,{"c":null,"d":true,"e":false}]}`,
	` {"b" : 1.50e+3 , "a" : -0.0, "z": -0, "x": 1E-2}`,
	`{"s":"tab\there \"q\" \\ \/ \u00e9 \ud83d\ude00 \ud800 x"}`,
	`{"dup":1,"dup":2,"a":{"dup":"x","dup":"y"}}`,
	`[]`, `{}`, `[[],{}]`, `{"a":}`, `{"a":1,}`, `[1 2]`, `{"a":01}`, `{"a":1.}`, `{"a":-}`,
	`{"a":"unterminated}`, `{"a":"ctl` + "\x01" + `"}`, `{"a":tru}`, `{"a":1} x`, `"str"`,
	`{"a":"\u12"}`, `{"a":"\q"}`, `[1e5,1E+5,1e-5,100000]`,
}

func TestCanonicalJSONMatchesReference(t *testing.T) {
	for _, s := range canonSeeds {
		checkSameAsReference(t, []byte(s))
	}
	checkSameAsReference(t, body10KB())
	for _, depth := range []int{maxCanonDepth, maxCanonDepth + 1, 20000} {
		deep := []byte(`{"k":` + strings.Repeat("[", depth-1) + `1` + strings.Repeat("]", depth-1) + `}`)
		_, ok := canonicalJSON(deep)
		if ok != (depth <= maxCanonDepth) {
			t.Fatalf("nesting %d: canonical = %v, want %v", depth, ok, depth <= maxCanonDepth)
		}
		checkSameAsReference(t, deep)
		if d := bodyDigest(deep, nil); len(d) != 32 {
			t.Fatalf("nesting %d: no digest", depth)
		}
	}
	// Deep bodies still get distinct keys (hashed raw).
	a := strings.Repeat("[", 40) + "1" + strings.Repeat("]", 40)
	b := strings.Repeat("[", 40) + "2" + strings.Repeat("]", 40)
	if bytes.Equal(bodyDigest([]byte(a), nil), bodyDigest([]byte(b), nil)) {
		t.Fatal("two different deep bodies share a digest")
	}
}

func FuzzCanonicalJSON(f *testing.F) {
	for _, s := range canonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(checkSameAsReference)
}
