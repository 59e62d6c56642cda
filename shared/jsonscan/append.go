package jsonscan

import "unicode/utf8"

// The writing side: llm-proxy builds a few JSON documents by hand on hot
// paths (refusals in OpenAI's error shape, CloudEvents, their data), each
// to the byte as encoding/json or the CloudEvents SDK writes it. They share
// this one string encoder, in one of two escapings:
//
//   - AppendString: encoding/json's (json.Marshal, and json.Encoder with its
//     default HTML escaping). For the proxy's error bodies and an event's
//     data object, which encoding/json wrote before.
//   - AppendStringVerbatim: what json.Marshal leaves of a string that a
//     MarshalJSON method wrote escaping only what JSON requires (the
//     CloudEvents SDK's writer, json-iterator), as encoding/json's
//     compaction of that output adds HTML escaping. For a CloudEvent's
//     attributes and extensions.
//
// Both escape ", \ and control characters, <, > and & (as \u003c, \u003e,
// \u0026: the text may end up in HTML or a script) and U+2028 and U+2029
// (JavaScript line terminators), and leave other characters as they are.
// They differ only where the two writers do: invalid UTF-8 becomes U+FFFD
// (\ufffd) in AppendString and is copied as is by AppendStringVerbatim,
// and \b and \f are written so by AppendString and as \u0008 and \u000c
// by AppendStringVerbatim.

// AppendString appends s to dst as a JSON string, byte for byte as
// encoding/json's Marshal writes it: ", \ and control characters escaped
// (\b, \f, \n, \r, \t, else \u00XX), <, >, & and U+2028, U+2029 escaped,
// invalid UTF-8 as \ufffd, every other character as is.
func AppendString(dst []byte, s string) []byte { return appendString(dst, s, false) }

// AppendStringVerbatim appends s to dst as a JSON string the way the
// CloudEvents SDK's writer and then encoding/json's compaction leave it:
// AppendString's escaping, except that invalid UTF-8 is copied as is and
// \b and \f are written \u0008 and \u000c.
func AppendStringVerbatim(dst []byte, s string) []byte { return appendString(dst, s, true) }

const hexDigits = "0123456789abcdef"

// asciiEscaped marks the ASCII bytes both escapings escape.
var asciiEscaped = func() (t [utf8.RuneSelf]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'], t['<'], t['>'], t['&'] = true, true, true, true, true
	return t
}()

func appendString(dst []byte, s string, verbatim bool) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if !asciiEscaped[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c == '\b' && !verbatim:
				dst = append(dst, '\\', 'b')
			case c == '\f' && !verbatim:
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		if c == 0xE2 && i+2 < len(s) && s[i+1] == 0x80 && s[i+2]&^1 == 0xA8 { // U+2028, U+2029
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[s[i+2]&0xF])
			i += 3
			start = i
			continue
		}
		if verbatim {
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
