package httpcache

import (
	"bytes"
	"strings"

	"github.com/llm-proxy/llm-proxy/shared/sse"
)

// streamFinished reports whether a captured stream is a complete answer:
// it ends on an event boundary, and for OpenAI's own stream formats with its
// terminal event ("data: [DONE]" for chat/completions, response.completed
// for the Responses API). A stream that merely stopped is never complete.
func streamFinished(path string, b []byte) bool {
	if !sse.Ended(b) {
		return false
	}
	var last []byte
	for ev := range sse.Events(b) {
		if !commentOnly(ev) {
			last = ev
		}
	}
	for line := range sse.Lines(last) {
		name, value := sse.Field(line)
		value = bytes.TrimSpace(value)
		switch string(name) {
		case "data":
			if bytes.HasPrefix(value, []byte(`{"error"`)) {
				return false // the proxy ends an interrupted stream with an error event
			}
			if string(value) == "[DONE]" {
				return true
			}
		case "event":
			if string(value) == "response.completed" {
				return true
			}
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
	for ev := range sse.Events(b) {
		if !commentOnly(ev) {
			out = append(out, ev...)
		}
	}
	return out
}

func commentOnly(ev []byte) bool {
	for line := range sse.Lines(ev) {
		if len(line) > 0 && !sse.IsComment(line) {
			return false
		}
	}
	return true
}
