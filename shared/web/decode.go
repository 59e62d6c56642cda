package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

// MaxJSONBody bounds management request bodies.
const MaxJSONBody = 1 << 20

// DecodeJSON decodes a bounded JSON body into v. The body is JSON whatever
// the Content-Type says (scripts often send `curl -d` bodies as form data),
// except multipart, which is refused; trailing data is rejected. Errors are
// *llmproxy.Error values (invalid_request, request_too_large) ready for
// WriteError. Unknown fields are ignored for compatibility with the
// original's clients.
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err == nil && strings.HasPrefix(mt, "multipart/") {
			return llmproxy.E(llmproxy.ErrInvalid, llmproxy.CodeInvalidRequest, "request body must be JSON")
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxJSONBody))
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return llmproxy.E(llmproxy.ErrTooLarge, llmproxy.CodeTooLarge, fmt.Sprintf("request body exceeds %d bytes", MaxJSONBody))
		}
		if errors.Is(err, io.EOF) {
			return llmproxy.E(llmproxy.ErrInvalid, llmproxy.CodeInvalidRequest, "request body is empty")
		}
		return llmproxy.Wrap(llmproxy.ErrInvalid, llmproxy.CodeInvalidRequest, "invalid request body", err)
	}
	if dec.More() {
		return llmproxy.E(llmproxy.ErrInvalid, llmproxy.CodeInvalidRequest, "invalid request body: trailing data")
	}
	return nil
}
