// Package jsonscan reads the top level of JSON documents without decoding
// them: it validates a document and hands back the raw bytes of each
// member of its outer object, allocating nothing on the common path.
//
// The proxy looks at a few members of every request body (model, stream,
// the fields token counting reads) and at one member of every response
// (usage). encoding/json's Decoder builds a token per value to do that;
// this package walks the bytes once and leaves the values as slices of the
// input, to be decoded only when they are needed.
//
// Validity is exactly encoding/json's (json.Valid): the same grammar, the
// same nesting limit, invalid UTF-8 inside strings accepted. The package's
// tests check this, and the member split, against encoding/json.
//
// The package also holds the writing side's one JSON string encoder
// (AppendString, AppendStringVerbatim), for the documents llm-proxy builds
// by hand to the byte as encoding/json or the CloudEvents SDK writes them;
// append.go says which escaping each caller needs.
package jsonscan

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// maxDepth is encoding/json's nesting limit.
const maxDepth = 10000

// ErrNotObject is returned by Members for a valid document that is not an
// object.
var ErrNotObject = errors.New("jsonscan: the document is not a JSON object")

// ErrNotArray is returned by Elements for a valid document that is not an
// array.
var ErrNotArray = errors.New("jsonscan: the document is not a JSON array")

// SyntaxError is a malformed document: what was wrong, at which byte.
type SyntaxError struct {
	Msg    string
	Offset int
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("jsonscan: %s at offset %d", e.Msg, e.Offset)
}

// Members validates data as one JSON object (surrounding whitespace
// allowed) and calls fn for each of its members in order, with the key
// (unquoted and unescaped; a slice of data unless it held escapes or
// non-ASCII bytes) and the
// raw value (a slice of data, without surrounding whitespace). fn must not
// keep key past its call when it needs to outlive data's mutation; value
// may be kept as long as data is. An error from fn stops the walk and is
// returned as is; the rest of the document is then not validated.
func Members(data []byte, fn func(key, value []byte) error) error {
	return walk(data, '{', fn)
}

// Elements validates data as one JSON array (surrounding whitespace
// allowed) and calls fn with each element's raw value, in order (a slice
// of data, without surrounding whitespace). ErrNotArray is returned for a
// valid document that is not an array; an error from fn stops the walk and
// is returned as is.
func Elements(data []byte, fn func(value []byte) error) error {
	return walk(data, '[', func(_, value []byte) error { return fn(value) })
}

// walk validates data as one container opened by open ('{' or '[') and
// calls fn per member (key nil for arrays).
func walk(data []byte, open byte, fn func(key, value []byte) error) error {
	s := scanner{data: data}
	s.skipSpace()
	if s.pos >= len(data) {
		return s.fail("unexpected end of input")
	}
	if data[s.pos] != open {
		if err := s.value(0); err != nil {
			return err
		}
		if err := s.end(); err != nil {
			return err
		}
		if open == '{' {
			return ErrNotObject
		}
		return ErrNotArray
	}
	closing := open + 2 // '}' or ']'
	s.pos++
	s.skipSpace()
	if s.pos < len(data) && data[s.pos] == closing {
		s.pos++
		return s.end()
	}
	for {
		s.skipSpace()
		var key []byte
		if open == '{' {
			var err error
			if key, err = s.memberKey(); err != nil {
				return err
			}
		}
		valueStart := s.pos
		if err := s.value(1); err != nil {
			return err
		}
		if err := fn(key, data[valueStart:s.pos]); err != nil {
			return err
		}
		s.skipSpace()
		if s.pos >= len(data) {
			return s.fail("unexpected end of input")
		}
		switch data[s.pos] {
		case ',':
			s.pos++
		case closing:
			s.pos++
			return s.end()
		default:
			return s.fail(fmt.Sprintf("expected ',' or %q after a value", closing))
		}
	}
}

// memberKey consumes `"key" :` and the whitespace after it, and returns the
// decoded key: a slice of data unless the key held escapes or non-ASCII
// bytes.
func (s *scanner) memberKey() ([]byte, error) {
	if s.pos >= len(s.data) || s.data[s.pos] != '"' {
		return nil, s.fail("expected an object key")
	}
	start := s.pos
	needsDecode, err := s.str()
	if err != nil {
		return nil, err
	}
	key := s.data[start+1 : s.pos-1]
	if needsDecode {
		var k string
		if err := json.Unmarshal(s.data[start:s.pos], &k); err != nil {
			return nil, s.fail("invalid object key")
		}
		key = []byte(k)
	}
	return key, s.colon()
}

// colon consumes the ':' after a key and the whitespace around it.
func (s *scanner) colon() error {
	s.skipSpace()
	if s.pos >= len(s.data) || s.data[s.pos] != ':' {
		return s.fail("expected ':' after an object key")
	}
	s.pos++
	s.skipSpace()
	return nil
}

// Valid reports whether data is one valid JSON document, as json.Valid.
func Valid(data []byte) bool {
	s := scanner{data: data}
	s.skipSpace()
	return s.value(0) == nil && s.end() == nil
}

// String decodes a raw JSON value that is a string. Strings without
// escapes are converted directly; others go through encoding/json.
func String(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	plain := true
	for _, c := range inner {
		if c == '\\' || c == '"' || c < 0x20 || c >= 0x80 {
			plain = false // escapes, or bytes json would check or replace
			break
		}
	}
	if plain {
		return string(inner), true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// Bool decodes a raw JSON value that is true or false.
func Bool(raw []byte) (v, ok bool) {
	switch string(raw) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}

// Int decodes a raw JSON value that is an integer fitting in an int64.
func Int(raw []byte) (int64, bool) {
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

type scanner struct {
	data []byte
	pos  int
}

func (s *scanner) fail(msg string) error { return &SyntaxError{Msg: msg, Offset: s.pos} }

// end accepts trailing whitespace only.
func (s *scanner) end() error {
	s.skipSpace()
	if s.pos != len(s.data) {
		return s.fail("unexpected data after the top-level value")
	}
	return nil
}

func (s *scanner) skipSpace() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// value consumes one value starting at s.pos (no leading whitespace).
// Containers are walked iteratively with a small stack of their kinds, so
// deep nesting costs no recursion.
func (s *scanner) value(depth int) error {
	// stack holds '{' or '[' per open container; the first 64 levels live
	// on the Go stack.
	var small [64]byte
	stack := small[:0]
	for {
		if s.pos >= len(s.data) {
			return s.fail("unexpected end of input")
		}
		switch c := s.data[s.pos]; {
		case c == '{' || c == '[':
			if depth+len(stack)+1 > maxDepth {
				return s.fail("exceeded max depth")
			}
			stack = append(stack, c)
			s.pos++
			s.skipSpace()
			if s.pos < len(s.data) && s.data[s.pos] == c+2 { // '}' or ']'
				s.pos++
				stack = stack[:len(stack)-1]
				break
			}
			if c == '{' {
				if err := s.skipKey(); err != nil {
					return err
				}
			}
			continue
		case c == '"':
			if _, err := s.str(); err != nil {
				return err
			}
		case c == '-' || (c >= '0' && c <= '9'):
			if err := s.number(); err != nil {
				return err
			}
		case c == 't':
			if err := s.literal("true"); err != nil {
				return err
			}
		case c == 'f':
			if err := s.literal("false"); err != nil {
				return err
			}
		case c == 'n':
			if err := s.literal("null"); err != nil {
				return err
			}
		default:
			return s.fail(fmt.Sprintf("invalid character %q looking for the beginning of a value", c))
		}
		// A value ended: close containers or move to the next element.
		for {
			if len(stack) == 0 {
				return nil
			}
			s.skipSpace()
			if s.pos >= len(s.data) {
				return s.fail("unexpected end of input")
			}
			open := stack[len(stack)-1]
			c := s.data[s.pos]
			if c == ',' {
				s.pos++
				s.skipSpace()
				if open == '{' {
					if err := s.skipKey(); err != nil {
						return err
					}
				}
				break
			}
			if c != open+2 {
				return s.fail(fmt.Sprintf("invalid character %q after a value in a container", c))
			}
			s.pos++
			stack = stack[:len(stack)-1]
		}
	}
}

// skipKey consumes a member key inside a value, where it is not needed:
// like memberKey, without decoding.
func (s *scanner) skipKey() error {
	if s.pos >= len(s.data) || s.data[s.pos] != '"' {
		return s.fail("expected an object key")
	}
	if _, err := s.str(); err != nil {
		return err
	}
	return s.colon()
}

// str consumes a string at s.pos and reports whether its bytes differ from
// its decoded value: it holds escapes, or bytes beyond ASCII (which
// decoding checks and may replace with U+FFFD).
func (s *scanner) str() (needsDecode bool, err error) {
	s.pos++ // the opening quote
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		switch {
		case c == '"':
			s.pos++
			return needsDecode, nil
		case c == '\\':
			needsDecode = true
			if s.pos+1 >= len(s.data) {
				return needsDecode, s.fail("unexpected end of input in a string escape")
			}
			switch s.data[s.pos+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.pos += 2
			case 'u':
				if s.pos+6 > len(s.data) {
					return needsDecode, s.fail("unexpected end of input in a \\u escape")
				}
				for _, h := range s.data[s.pos+2 : s.pos+6] {
					if !isHex(h) {
						return needsDecode, s.fail("invalid \\u escape")
					}
				}
				s.pos += 6
			default:
				return needsDecode, s.fail("invalid escape in a string")
			}
		case c < 0x20:
			return needsDecode, s.fail("control character in a string")
		case c >= 0x80:
			needsDecode = true
			s.pos++
		default:
			s.pos++
		}
	}
	return needsDecode, s.fail("unexpected end of input in a string")
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// number consumes a number with JSON's grammar: -?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?
func (s *scanner) number() error {
	d := s.data
	if d[s.pos] == '-' {
		s.pos++
	}
	switch {
	case s.pos < len(d) && d[s.pos] == '0':
		s.pos++
	case s.pos < len(d) && d[s.pos] >= '1' && d[s.pos] <= '9':
		for s.pos < len(d) && isDigit(d[s.pos]) {
			s.pos++
		}
	default:
		return s.fail("invalid number")
	}
	if s.pos < len(d) && d[s.pos] == '.' {
		s.pos++
		if s.pos >= len(d) || !isDigit(d[s.pos]) {
			return s.fail("invalid number: no digit after the decimal point")
		}
		for s.pos < len(d) && isDigit(d[s.pos]) {
			s.pos++
		}
	}
	if s.pos < len(d) && (d[s.pos] == 'e' || d[s.pos] == 'E') {
		s.pos++
		if s.pos < len(d) && (d[s.pos] == '+' || d[s.pos] == '-') {
			s.pos++
		}
		if s.pos >= len(d) || !isDigit(d[s.pos]) {
			return s.fail("invalid number: no digit in the exponent")
		}
		for s.pos < len(d) && isDigit(d[s.pos]) {
			s.pos++
		}
	}
	return nil
}

func (s *scanner) literal(word string) error {
	if len(s.data)-s.pos < len(word) || string(s.data[s.pos:s.pos+len(word)]) != word {
		return s.fail("invalid literal")
	}
	s.pos += len(word)
	return nil
}
