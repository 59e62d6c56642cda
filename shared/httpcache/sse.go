package httpcache

import (
	"bytes"
	"iter"
	"strings"
)

// sseEvents yields the events of a raw SSE body, each with its terminating
// blank line, so that writing them in order reproduces the body.
func sseEvents(b []byte) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		start := 0
		for i := 0; i < len(b); {
			j := bytes.IndexByte(b[i:], '\n')
			if j < 0 {
				break
			}
			line := b[i : i+j]
			i += j + 1
			if len(line) == 0 || (len(line) == 1 && line[0] == '\r') {
				if !yield(b[start:i]) {
					return
				}
				start = i
			}
		}
		if start < len(b) {
			yield(b[start:])
		}
	}
}

// sseComplete reports whether a captured stream ended cleanly on an event
// boundary (after `data: [DONE]` for OpenAI's chat/completions streams, or
// after the last event of other streams).
func sseComplete(b []byte) bool {
	return len(b) > 0 && (bytes.HasSuffix(b, []byte("\n\n")) || bytes.HasSuffix(b, []byte("\r\n\r\n")))
}

// streamFinished reports whether a captured stream is a complete answer:
// it ends on an event boundary, and for OpenAI's own stream formats with its
// terminal event ("data: [DONE]" for chat/completions, response.completed
// for the Responses API). A stream that merely stopped is never complete.
func streamFinished(path string, b []byte) bool {
	if !sseComplete(b) {
		return false
	}
	var last []byte
	for ev := range sseEvents(b) {
		if !commentOnly(ev) {
			last = ev
		}
	}
	for line := range bytes.Lines(last) {
		line = bytes.TrimRight(line, "\r\n")
		if bytes.HasPrefix(bytes.TrimSpace(bytes.TrimPrefix(line, []byte("data:"))), []byte(`{"error"`)) {
			return false // the proxy ends an interrupted stream with an error event
		}
		if bytes.Equal(bytes.TrimSpace(bytes.TrimPrefix(line, []byte("data:"))), []byte("[DONE]")) && bytes.HasPrefix(line, []byte("data:")) {
			return true
		}
		if bytes.HasPrefix(line, []byte("event:")) && string(bytes.TrimSpace(line[len("event:"):])) == "response.completed" {
			return true
		}
	}
	if bytes.Contains(last, []byte(`"type":"response.completed"`)) {
		return true
	}
	// Formats that end with a terminal event but did not: truncated.
	if strings.HasSuffix(path, "/completions") || strings.HasSuffix(path, "/responses") {
		return false
	}
	return last != nil
}

// stripComments drops events made only of comment lines (": keep-alive"),
// which carry nothing worth replaying.
func stripComments(b []byte) []byte {
	var out []byte
	for ev := range sseEvents(b) {
		if !commentOnly(ev) {
			out = append(out, ev...)
		}
	}
	return out
}

func commentOnly(ev []byte) bool {
	for line := range bytes.Lines(ev) {
		line = bytes.TrimRight(line, "\r\n")
		if len(line) > 0 && line[0] != ':' {
			return false
		}
	}
	return true
}
