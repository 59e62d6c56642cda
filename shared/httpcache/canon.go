package httpcache

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"

	"github.com/llm-proxy/llm-proxy/shared/jsonscan"
)

// canonicalJSON returns the canonical bytes of body (the stream the canon
// type of the tests writes for the decoded value: type tags,
// length-prefixed strings, arrays closed by ']', object keys sorted with
// the last duplicate winning, exact numbers), or false when body is not
// exactly one JSON object or array (surrounded by whitespace), or nests
// deeper than maxCanonDepth: such a body is then hashed raw, which is still
// a correct key, only a less forgiving one. jsonscan validates the body
// once and splits each container; no tree is built.
func canonicalJSON(body []byte) ([]byte, bool) {
	t := bytes.Trim(body, " \t\r\n") // JSON whitespace only
	if len(t) == 0 || (t[0] != '{' && t[0] != '[') || !jsonscan.Valid(t) {
		return nil, false
	}
	out, err := canonValue(make([]byte, 0, len(body)), t, 0)
	if err != nil {
		return nil, false
	}
	return out, true
}

// maxCanonDepth bounds the nesting canonicalised: each level re-scans its
// contents, so the work is (depth × size); request bodies nest far less.
const maxCanonDepth = 32

var errTooDeep = errors.New("too deep to canonicalise")

// canonValue appends the canonical form of one valid JSON value.
func canonValue(out, raw []byte, depth int) ([]byte, error) {
	switch raw[0] {
	case '{':
		if depth >= maxCanonDepth {
			return out, errTooDeep
		}
		return canonObject(out, raw, depth+1)
	case '[':
		if depth >= maxCanonDepth {
			return out, errTooDeep
		}
		out = append(out, 'a') // items follow, then ']' (never a value tag)
		var err error
		if e := jsonscan.Elements(raw, func(v []byte) error {
			out, err = canonValue(out, v, depth+1)
			return err
		}); e != nil {
			return out, e
		}
		return append(out, ']'), nil
	case '"':
		s, _ := jsonscan.String(raw)
		return appendLenString(append(out, 's'), s), nil
	case 't':
		return append(out, 't'), nil
	case 'f':
		return append(out, 'f'), nil
	case 'n':
		return append(out, 'z'), nil
	}
	return appendLenString(append(out, 'n'), canonicalNumber(string(raw))), nil
}

func appendLenString(out []byte, s string) []byte {
	out = binary.AppendUvarint(out, uint64(len(s)))
	return append(out, s...)
}

type member struct {
	key        string
	start, end int // the value's canonical bytes in the scratch buffer
}

func canonObject(out, raw []byte, depth int) ([]byte, error) {
	var members []member
	var scratch []byte
	var err error
	if e := jsonscan.Members(raw, func(k, v []byte) error {
		start := len(scratch)
		if scratch, err = canonValue(scratch, v, depth); err != nil {
			return err
		}
		members = append(members, member{key: string(k), start: start, end: len(scratch)})
		return nil
	}); e != nil {
		return out, e
	}
	// sort by key; for duplicates the last one wins (as in encoding/json)
	slices.SortStableFunc(members, func(a, b member) int {
		switch {
		case a.key < b.key:
			return -1
		case a.key > b.key:
			return 1
		}
		return 0
	})
	uniq := members[:0]
	for i, m := range members {
		if i+1 < len(members) && members[i+1].key == m.key {
			continue
		}
		uniq = append(uniq, m)
	}
	out = append(out, 'o')
	out = binary.AppendUvarint(out, uint64(len(uniq)))
	for _, m := range uniq {
		out = appendLenString(out, m.key)
		out = append(out, scratch[m.start:m.end]...)
	}
	return out, nil
}
