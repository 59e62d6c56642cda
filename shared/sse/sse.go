// Package sse reads Server-Sent Event streams (text/event-stream) as the
// WHATWG HTML standard's "event stream interpretation" does: a line ends
// at CRLF, LF or CR, an event ends at a blank line, a line starting with a
// colon is a comment, a line's field name ends at its first colon and one
// space after that colon is dropped, and one leading U+FEFF (BOM) is
// skipped.
//
// It is llm-proxy's one SSE splitter. The proxy relays upstream streams
// event by event through a Parser, which is fed the bytes as they arrive
// (a CRLF split across two reads included) and hands back events without
// copying them; the response cache (Events, Lines, Ended) and the
// CloudEvents body merge (Lines, Field) read captured streams whole. None
// of them allocates on the common path: lines and events are slices of the
// input.
package sse

import (
	"bytes"
	"iter"
)

// bom is U+FEFF in UTF-8, which a stream may start with.
var bom = []byte("\xEF\xBB\xBF")

// finder finds the line ends of one text from increasing positions. It
// remembers where it saw the next CR and the next LF, so that no byte is
// searched twice for the same value: a text of CR-only lines (or LF-only)
// is not searched to its end for the other byte at every line.
type finder struct {
	cr, lf int // the next CR / LF at or after the last position searched from; len(b) when none; -1 before the first search
}

func newFinder() finder { return finder{cr: -1, lf: -1} }

// next returns the index of the first line end in b[from:] (as an index
// into b) and its length: 2 for CRLF, 1 for LF or for a CR not followed by
// LF in b (a CR that is b's last byte included: a caller reading a stream
// in pieces must then drop an LF that starts the next piece). i is -1 when
// b[from:] holds no line end.
func (f *finder) next(b []byte, from int) (i, n int) {
	if f.lf < from {
		f.lf = index(b, from, '\n')
	}
	if f.cr < from {
		f.cr = index(b, from, '\r')
	}
	switch {
	case f.lf < f.cr:
		return f.lf, 1
	case f.cr == len(b): // and so is lf: none
		return -1, 0
	case f.cr+1 < len(b) && b[f.cr+1] == '\n':
		return f.cr, 2
	}
	return f.cr, 1
}

// index returns the index of the first c in b[from:] as an index into b,
// or len(b).
func index(b []byte, from int, c byte) int {
	if i := bytes.IndexByte(b[from:], c); i >= 0 {
		return from + i
	}
	return len(b)
}

// Lines yields the lines of text, a whole stream or one event of it,
// without their line ends (a CR at the very end of text ends a line), after
// one leading BOM; the bytes after the last line end, if any, are yielded
// last. The lines are slices of text.
func Lines(text []byte) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		text := bytes.TrimPrefix(text, bom)
		f := newFinder()
		for pos := 0; pos < len(text); {
			i, n := f.next(text, pos)
			if i < 0 {
				yield(text[pos:])
				return
			}
			if !yield(text[pos:i]) {
				return
			}
			pos = i + n
		}
	}
}

// Events yields the raw events of text, a whole stream: each event's lines
// with their line ends and the blank line that ends it, so that writing
// them in order gives text back. A leading BOM goes with the first event;
// bytes after the last blank line (an incomplete event) are yielded last.
// The events are slices of text.
func Events(text []byte) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		start, pos := 0, 0
		if bytes.HasPrefix(text, bom) {
			pos = len(bom)
		}
		f := newFinder()
		for pos < len(text) {
			i, n := f.next(text, pos)
			if i < 0 {
				break
			}
			blank := i == pos
			pos = i + n
			if blank {
				if !yield(text[start:pos]) {
					return
				}
				start = pos
			}
		}
		if start < len(text) {
			yield(text[start:])
		}
	}
}

// Ended reports whether text, a whole stream or one event of it, ends on an
// event boundary: with a blank line, whichever line ends it uses.
func Ended(text []byte) bool {
	n := len(text)
	switch {
	case n >= 2 && text[n-2] == '\r' && text[n-1] == '\n':
		n -= 2
	case n >= 1 && (text[n-1] == '\n' || text[n-1] == '\r'):
		n--
	default:
		return false
	}
	return n == 0 || text[n-1] == '\n' || text[n-1] == '\r' || n == len(bom) && bytes.Equal(text[:n], bom)
}

// Field splits a line (without its line end) into its field name and value:
// the name ends at the first colon, and one space after the colon is not
// part of the value; a line without a colon is a field name with an empty
// value. A comment line, which starts with a colon, has an empty name;
// IsComment tells it from other lines. value is always a suffix of line.
func Field(line []byte) (name, value []byte) {
	i := bytes.IndexByte(line, ':')
	if i < 0 {
		return line, line[len(line):]
	}
	name, value = line[:i], line[i+1:]
	if len(value) > 0 && value[0] == ' ' {
		value = value[1:]
	}
	return name, value
}

// IsComment reports whether line is a comment (": keep-alive").
func IsComment(line []byte) bool { return len(line) > 0 && line[0] == ':' }
