package web

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/llm-proxy/llm-proxy/shared/jsonscan"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

// StatusOf maps an error kind to its HTTP status.
func StatusOf(err error) int {
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, llmproxy.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, llmproxy.ErrUnauthorized):
		return http.StatusUnauthorized
	case errors.Is(err, llmproxy.ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, llmproxy.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, llmproxy.ErrMethodNotAllowed):
		return http.StatusMethodNotAllowed
	case errors.Is(err, llmproxy.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, llmproxy.ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, llmproxy.ErrRateLimited):
		return http.StatusTooManyRequests
	case errors.Is(err, llmproxy.ErrUnavailable):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// ErrorBody is the management API's error shape.
type ErrorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// HandlerFunc is a handler that returns its failure instead of writing it;
// the adapter of its surface (Surface.Handle) logs and renders the error.
// A handler that returns an error must not have written a response.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// Renderer writes a failed request's answer with the given status. It may
// show the client llmproxy.ErrorMessage(err) and llmproxy.ErrorCode(err)
// (client-safe by construction), never err.Error(), which carries causes.
type Renderer func(w http.ResponseWriter, r *http.Request, status int, err error)

// The renderers of the JSON surfaces; the admin UI's HTML renderer lives
// with its templates.
var (
	// ManagementJSON renders {"error","code"}: the management API (/manage).
	ManagementJSON Renderer = renderManagementJSON
	// OpenAIJSON renders OpenAI's error envelope: the proxy (/v1).
	OpenAIJSON Renderer = renderOpenAIJSON
)

// Surface is the one error path of an HTTP surface: every failure is logged
// once with LogFailure's level policy, then answered by Render. Log nil
// means not logged (the caller logged already, as Recover does).
type Surface struct {
	Render Renderer
	Log    *slog.Logger
}

// Handle adapts fn: its error is answered with the status of its kind
// (StatusOf) and logged once.
func (s Surface) Handle(fn HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			s.Fail(w, r, err)
		}
	})
}

// Fail logs err once and answers it with the status of its kind.
func (s Surface) Fail(w http.ResponseWriter, r *http.Request, err error) {
	s.FailStatus(w, r, StatusOf(err), err)
}

// FailStatus is Fail with a status the caller decided (the proxy answers
// an unreachable upstream, ErrUnavailable, with 502 or 504).
func (s Surface) FailStatus(w http.ResponseWriter, r *http.Request, status int, err error) {
	LogFailure(r, s.Log, status, err)
	s.Render(w, r, status, err)
}

// WriteError writes err as {"error","code"} with the status of its kind and
// logs the internal cause once (Surface{ManagementJSON, log}.Fail). Messages
// of errors that are not *llmproxy.Error are replaced by a generic text.
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	Surface{Render: ManagementJSON, Log: log}.Fail(w, r, err)
}

func renderManagementJSON(w http.ResponseWriter, _ *http.Request, status int, err error) {
	WriteJSON(w, status, ErrorBody{Error: llmproxy.ErrorMessage(err), Code: llmproxy.ErrorCode(err)})
}

// OpenAIError is OpenAI's error envelope, so SDKs raise readable exceptions.
type OpenAIError struct {
	Error OpenAIErrorDetail `json:"error"`
}

// OpenAIErrorDetail is the inner object of OpenAIError.
type OpenAIErrorDetail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    string  `json:"code"`
}

// WriteOpenAIError writes err in OpenAI's error shape with the status of its
// kind, and logs the internal cause once (Surface{OpenAIJSON, log}.Fail).
func WriteOpenAIError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	FailOpenAI(w, r, log, StatusOf(err), err)
}

// FailOpenAI is Surface{Render: OpenAIJSON, Log: log}.FailStatus called
// directly: the proxy's refusal path, where the indirect call through
// Render would move each refused request to the heap.
func FailOpenAI(w http.ResponseWriter, r *http.Request, log *slog.Logger, status int, err error) {
	LogFailure(r, log, status, err)
	renderOpenAIJSON(w, r, status, err)
}

func renderOpenAIJSON(w http.ResponseWriter, _ *http.Request, status int, err error) {
	WriteOpenAIBody(w, status, llmproxy.ErrorCode(err), llmproxy.ErrorMessage(err))
}

// WriteOpenAIBody writes an OpenAI-shaped error with the given status, code
// and client-safe message; the type follows the status as OpenAI's does.
func WriteOpenAIBody(w http.ResponseWriter, status int, code, message string) {
	writeJSONBytes(w, status, appendOpenAIBody(make([]byte, 0, 80+len(code)+len(message)), status, code, message))
}

// appendOpenAIBody appends the body WriteOpenAIBody writes: the bytes
// json.NewEncoder(w).Encode(OpenAIError{…}) writes, built without
// reflection (it is every refused request's answer).
func appendOpenAIBody(b []byte, status int, code, message string) []byte {
	b = append(b, `{"error":{"message":`...)
	b = jsonscan.AppendString(b, message)
	b = append(b, `,"type":`...)
	b = jsonscan.AppendString(b, openAIType(status))
	b = append(b, `,"param":null,"code":`...)
	b = jsonscan.AppendString(b, code)
	return append(b, "}}\n"...)
}

func openAIType(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return "authentication_error"
	case status == http.StatusForbidden:
		return "permission_error"
	case status == http.StatusNotFound:
		return "not_found_error"
	case status == http.StatusTooManyRequests:
		return "rate_limit_error"
	case status >= 500:
		return "server_error"
	}
	return "invalid_request_error"
}

// FailureLevel is the one level policy for failed requests: a server
// failure (5xx) is an error; a client error (4xx) is the client's to fix and
// the access log counts it already, so it is debug.
func FailureLevel(status int) slog.Level {
	if status >= 500 {
		return slog.LevelError
	}
	return slog.LevelDebug
}

// LogFailure logs a failed request once, at FailureLevel(status), with its
// full error (cause included: err.Error() is for logs, never for clients).
// Nothing is built when that level is off; a nil log logs nothing.
func LogFailure(r *http.Request, log *slog.Logger, status int, err error) {
	if log == nil {
		return
	}
	ctx, level := r.Context(), FailureLevel(status)
	if !log.Enabled(ctx, level) {
		return
	}
	log.LogAttrs(ctx, level, "request failed",
		slog.String("request_id", RequestID(ctx)),
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.Int("status", status),
		slog.String("error", err.Error()))
}

// WriteJSON writes v as JSON with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal error","code":"internal_error"}`)
	}
	writeJSONBytes(w, status, append(b, '\n'))
}

// writeJSONBytes writes a whole JSON body in one write, with its length
// (so that it can leave before the handler's bookkeeping).
func writeJSONBytes(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
