package web

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

// TestOpenAIBodyMatchesEncodingJSON checks that the reflection-free body
// is byte for byte what json.NewEncoder wrote before, for messages that
// need no escaping and for every kind that does.
func TestOpenAIBodyMatchesEncodingJSON(t *testing.T) {
	messages := []string{
		"", "Missing or invalid Authorization header: expected 'Bearer <token>'.",
		"plain message", `quote " and \ backslash`, "tab\tnewline\n", "html <b>&</b>",
		"unicode é ü 漢字", "line sep \u2028 para \u2029", "invalid \xff\xfe utf-8", "nul \x00 del \x7f",
	}
	codes := []string{"", "invalid_token", "token_not_found", "weird<code>"}
	statuses := []int{400, 401, 403, 404, 405, 413, 429, 500, 502, 503}
	for _, msg := range messages {
		for _, code := range codes {
			for _, status := range statuses {
				var want bytes.Buffer
				_ = json.NewEncoder(&want).Encode(OpenAIError{Error: OpenAIErrorDetail{Message: msg, Type: openAIType(status), Code: code}})
				if got := appendOpenAIBody(nil, status, code, msg); !bytes.Equal(got, want.Bytes()) {
					t.Fatalf("status %d code %q message %q:\n got %s\nwant %s", status, code, msg, got, want.Bytes())
				}
			}
		}
	}
}

func TestWriteJSONWholeBody(t *testing.T) {
	tests := []struct {
		name   string
		write  func(http.ResponseWriter)
		status int
		body   string
	}{
		{"value", func(w http.ResponseWriter) { WriteJSON(w, http.StatusCreated, map[string]int{"a": 1}) }, 201, "{\"a\":1}\n"},
		{"unencodable", func(w http.ResponseWriter) { WriteJSON(w, http.StatusOK, map[string]any{"f": func() {}}) }, 500,
			"{\"error\":\"internal error\",\"code\":\"internal_error\"}\n"},
		{"openai", func(w http.ResponseWriter) { WriteOpenAIBody(w, http.StatusUnauthorized, "invalid_token", "no") }, 401,
			"{\"error\":{\"message\":\"no\",\"type\":\"authentication_error\",\"param\":null,\"code\":\"invalid_token\"}}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			tt.write(rec)
			if rec.Code != tt.status || rec.Body.String() != tt.body {
				t.Fatalf("got %d %q, want %d %q", rec.Code, rec.Body, tt.status, tt.body)
			}
			h := rec.Header()
			if h.Get("Content-Type") != "application/json" || h.Get("X-Content-Type-Options") != "nosniff" ||
				h.Get("Content-Length") != strconv.Itoa(len(tt.body)) {
				t.Fatalf("headers %v", h)
			}
		})
	}
}
