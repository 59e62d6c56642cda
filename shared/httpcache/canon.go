package httpcache

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// canonJSON writes the canonical form of one JSON value (the stream the
// canon type would write for the decoded value: type tags, length-prefixed
// strings, arrays closed by ']', object keys sorted with the last duplicate winning, exact numbers)
// without building a tree. It parses strictly; any error means "not JSON".
type canonJSON struct {
	in    []byte
	pos   int
	depth int
}

// maxDepth bounds nesting like encoding/json; deeper bodies are hashed raw.
const maxDepth = 10000

var errNotJSON = errors.New("not json")

// canonicalJSON returns the canonical bytes of body, or false when body is
// not exactly one JSON object or array (surrounded by whitespace).
func canonicalJSON(body []byte) ([]byte, bool) {
	p := canonJSON{in: body}
	p.ws()
	if p.pos >= len(p.in) || (p.in[p.pos] != '{' && p.in[p.pos] != '[') {
		return nil, false
	}
	out, err := p.value(make([]byte, 0, len(body)))
	if err != nil {
		return nil, false
	}
	p.ws()
	if p.pos != len(p.in) {
		return nil, false
	}
	return out, true
}

func (p *canonJSON) ws() {
	for p.pos < len(p.in) {
		switch p.in[p.pos] {
		case ' ', '\t', '\r', '\n':
			p.pos++
		default:
			return
		}
	}
}

func (p *canonJSON) value(out []byte) ([]byte, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxDepth {
		return out, errNotJSON
	}
	p.ws()
	if p.pos >= len(p.in) {
		return out, errNotJSON
	}
	switch c := p.in[p.pos]; {
	case c == '{':
		return p.object(out)
	case c == '[':
		return p.array(out)
	case c == '"':
		s, err := p.str()
		if err != nil {
			return out, err
		}
		out = append(out, 's')
		return appendLenString(out, s), nil
	case c == 't':
		return p.lit(out, "true", 't')
	case c == 'f':
		return p.lit(out, "false", 'f')
	case c == 'n':
		return p.lit(out, "null", 'z')
	case c == '-' || (c >= '0' && c <= '9'):
		n, err := p.number()
		if err != nil {
			return out, err
		}
		out = append(out, 'n')
		return appendLenString(out, canonicalNumber(n)), nil
	}
	return out, errNotJSON
}

func (p *canonJSON) lit(out []byte, word string, tag byte) ([]byte, error) {
	if !bytes.HasPrefix(p.in[p.pos:], []byte(word)) {
		return out, errNotJSON
	}
	p.pos += len(word)
	return append(out, tag), nil
}

func appendLenString(out []byte, s string) []byte {
	out = binary.AppendUvarint(out, uint64(len(s)))
	return append(out, s...)
}

func (p *canonJSON) array(out []byte) ([]byte, error) {
	p.pos++                // [
	out = append(out, 'a') // items follow, then ']' (never a value tag)
	var err error
	p.ws()
	if p.pos < len(p.in) && p.in[p.pos] == ']' {
		p.pos++
	} else {
		for {
			if out, err = p.value(out); err != nil {
				return out, err
			}
			p.ws()
			if p.pos >= len(p.in) {
				return out, errNotJSON
			}
			if p.in[p.pos] == ',' {
				p.pos++
				continue
			}
			if p.in[p.pos] == ']' {
				p.pos++
				break
			}
			return out, errNotJSON
		}
	}
	return append(out, ']'), nil
}

type member struct {
	key        string
	start, end int // the value's canonical bytes in the scratch buffer
}

func (p *canonJSON) object(out []byte) ([]byte, error) {
	p.pos++ // {
	var members []member
	var scratch []byte
	var err error
	p.ws()
	if p.pos < len(p.in) && p.in[p.pos] == '}' {
		p.pos++
	} else {
		for {
			p.ws()
			if p.pos >= len(p.in) || p.in[p.pos] != '"' {
				return out, errNotJSON
			}
			k, err2 := p.str()
			if err2 != nil {
				return out, err2
			}
			p.ws()
			if p.pos >= len(p.in) || p.in[p.pos] != ':' {
				return out, errNotJSON
			}
			p.pos++
			s := len(scratch)
			if scratch, err = p.value(scratch); err != nil {
				return out, err
			}
			members = append(members, member{key: k, start: s, end: len(scratch)})
			p.ws()
			if p.pos >= len(p.in) {
				return out, errNotJSON
			}
			if p.in[p.pos] == ',' {
				p.pos++
				continue
			}
			if p.in[p.pos] == '}' {
				p.pos++
				break
			}
			return out, errNotJSON
		}
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

// str parses a JSON string at p.pos and returns its unescaped value.
func (p *canonJSON) str() (string, error) {
	p.pos++ // opening quote
	start := p.pos
	for p.pos < len(p.in) {
		c := p.in[p.pos]
		switch {
		case c == '"':
			s := string(p.in[start:p.pos])
			p.pos++
			return s, nil
		case c == '\\':
			return p.strSlow(start)
		case c < 0x20:
			return "", errNotJSON
		}
		p.pos++
	}
	return "", errNotJSON
}

// strSlow unescapes a string with escapes, as encoding/json does (lone
// surrogates become U+FFFD).
func (p *canonJSON) strSlow(start int) (string, error) {
	b := slices.Clone(p.in[start:p.pos])
	for p.pos < len(p.in) {
		c := p.in[p.pos]
		switch {
		case c == '"':
			p.pos++
			return string(b), nil
		case c < 0x20:
			return "", errNotJSON
		case c != '\\':
			b = append(b, c)
			p.pos++
			continue
		}
		if p.pos+1 >= len(p.in) {
			return "", errNotJSON
		}
		e := p.in[p.pos+1]
		p.pos += 2
		switch e {
		case '"', '\\', '/':
			b = append(b, e)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return "", errNotJSON
			}
			if utf16.IsSurrogate(r) {
				if r2, ok2 := p.peekLowSurrogate(); ok2 {
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						p.pos += 6
						b = utf8.AppendRune(b, dec)
						continue
					}
				}
				r = utf8.RuneError
			}
			b = utf8.AppendRune(b, r)
		default:
			return "", errNotJSON
		}
	}
	return "", errNotJSON
}

func (p *canonJSON) hex4() (rune, bool) {
	if p.pos+4 > len(p.in) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(p.in[p.pos:p.pos+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	p.pos += 4
	return rune(v), true
}

func (p *canonJSON) peekLowSurrogate() (rune, bool) {
	if p.pos+6 > len(p.in) || p.in[p.pos] != '\\' || p.in[p.pos+1] != 'u' {
		return 0, false
	}
	v, err := strconv.ParseUint(string(p.in[p.pos+2:p.pos+6]), 16, 32)
	if err != nil {
		return 0, false
	}
	return rune(v), true
}

// number scans a JSON number per the grammar and returns its text.
func (p *canonJSON) number() (string, error) {
	start := p.pos
	in := p.in
	if p.pos < len(in) && in[p.pos] == '-' {
		p.pos++
	}
	switch {
	case p.pos < len(in) && in[p.pos] == '0':
		p.pos++
	case p.pos < len(in) && in[p.pos] >= '1' && in[p.pos] <= '9':
		for p.pos < len(in) && in[p.pos] >= '0' && in[p.pos] <= '9' {
			p.pos++
		}
	default:
		return "", errNotJSON
	}
	if p.pos < len(in) && in[p.pos] == '.' {
		p.pos++
		if p.pos >= len(in) || in[p.pos] < '0' || in[p.pos] > '9' {
			return "", errNotJSON
		}
		for p.pos < len(in) && in[p.pos] >= '0' && in[p.pos] <= '9' {
			p.pos++
		}
	}
	if p.pos < len(in) && (in[p.pos] == 'e' || in[p.pos] == 'E') {
		p.pos++
		if p.pos < len(in) && (in[p.pos] == '+' || in[p.pos] == '-') {
			p.pos++
		}
		if p.pos >= len(in) || in[p.pos] < '0' || in[p.pos] > '9' {
			return "", errNotJSON
		}
		for p.pos < len(in) && in[p.pos] >= '0' && in[p.pos] <= '9' {
			p.pos++
		}
	}
	return string(in[start:p.pos]), nil
}
